use super::*;

const FILE: &str = r#"# replica C's file
[server]
listen = "0.0.0.0:8080" # C's own port

[admin]
listen = "127.0.0.1:9901"

# Blue is the stable pool.
[pools.blue]
backends = ["10.0.0.1:8000"] # do not touch

[pools.green]
backends = ["10.0.0.2:8000"]

[[routes]]
name = "web"
# Shifted by hand.
split = { blue = 90, green = 10 }

[cluster]
etcd = ["http://etcd:2379"]
prefix = "/s/web"
"#;

#[test]
fn the_shared_part_has_no_local_table() {
    let s = shared(FILE).unwrap();
    for local in ["[server]", "[admin]", "[cluster]", "C's own port"] {
        assert!(!s.contains(local), "{local} leaked into:\n{s}");
    }
    assert!(s.contains("# Blue is the stable pool."));
    assert!(s.contains("split = { blue = 90, green = 10 }"));
}

#[test]
fn merging_the_same_content_changes_nothing() {
    let reformatted = "[pools.blue]\nbackends = [ \"10.0.0.1:8000\" ]\n[pools.green]\nbackends = [\"10.0.0.2:8000\"]\n[[routes]]\nname = \"web\"\nsplit = { blue = 90, green = 10 }\n";
    assert!(same_shared(FILE, reformatted).unwrap());
    assert_eq!(merge(FILE, reformatted).unwrap(), FILE);
}

#[test]
fn a_changed_split_replaces_only_the_split() {
    let theirs = shared(FILE)
        .unwrap()
        .replace("blue = 90, green = 10", "blue = 50, green = 50");
    let merged = merge(FILE, &theirs).unwrap();
    assert_eq!(
        merged,
        FILE.replace("blue = 90, green = 10", "blue = 50, green = 50")
    );
    // Local tables and the comments of untouched lines are kept.
    assert!(merged.contains("listen = \"0.0.0.0:8080\" # C's own port"));
    assert!(merged.contains("backends = [\"10.0.0.1:8000\"] # do not touch"));
}

#[test]
fn added_and_removed_pools_and_sections() {
    let theirs = "[health]\ninterval = \"5s\"\n\n[pools.blue]\nbackends = [\"10.0.0.1:8000\"]\n\n[[routes]]\nname = \"web\"\nsplit = { blue = 100 }\n";
    let merged = merge(FILE, theirs).unwrap();
    assert!(same_shared(&merged, theirs).unwrap(), "{merged}");
    assert!(!merged.contains("green"), "{merged}");
    assert!(merged.contains("[server]") && merged.contains("[cluster]"));
    // The merged file is still a valid configuration.
    crate::config::parse(&merged, std::path::Path::new("t.toml")).unwrap();
}

#[test]
fn a_route_added_to_the_cluster_appears_in_the_file() {
    let theirs = format!(
        "{}\n[[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nsplit = {{ green = 100 }}\n",
        shared(FILE).unwrap()
    );
    let merged = merge(FILE, &theirs).unwrap();
    assert!(same_shared(&merged, &theirs).unwrap(), "{merged}");
    let cfg = crate::config::parse(&merged, std::path::Path::new("t.toml")).unwrap();
    assert_eq!(cfg.routes.len(), 2);
}

#[test]
fn bad_toml_is_an_error() {
    assert!(shared("[pools\n").is_err());
    assert!(merge(FILE, "routes = [").is_err());
}

/// Every top-level key the parser knows is shared or local, never both:
/// a section added to the configuration must be classified here.
#[test]
fn every_top_level_table_is_classified() {
    let err = toml::from_str::<crate::config::RawConfigProbe>("zz_not_a_key = 1").unwrap_err();
    let message = err.to_string();
    let expected: Vec<&str> = message
        .split("expected ")
        .nth(1)
        .map(|rest| rest.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    assert!(
        expected.len() >= 10,
        "cannot read the key list from: {message}"
    );
    for key in &expected {
        let s = SHARED.contains(key);
        let l = LOCAL.contains(key);
        assert!(
            s ^ l,
            "top-level key {key} must be in exactly one of SHARED and LOCAL"
        );
    }
    for key in SHARED.iter().chain(LOCAL) {
        assert!(expected.contains(key), "{key} is not a key of the file");
    }
}

/// The local part of a file: what `shared` leaves out.
fn local(file: &str) -> String {
    let mut doc: DocumentMut = file.parse().unwrap();
    for key in SHARED {
        doc.remove(key);
    }
    doc.to_string()
}

proptest::proptest! {
    /// Whatever the cluster's shared part says, the merged file says the
    /// same, and its local part is the file's own, byte for byte.
    #[test]
    fn merge_takes_the_shared_part_and_keeps_the_local_one(
        blue in 0u32..=100,
        extra_route in proptest::bool::ANY,
        drop_green in proptest::bool::ANY,
        interval_s in 1u32..30,
    ) {
        let mut theirs = format!("[health]\ninterval = \"{interval_s}s\"\n\n[pools.blue]\nbackends = [\"10.0.0.1:8000\"]\n");
        if !drop_green {
            theirs.push_str("\n[pools.green]\nbackends = [\"10.0.0.2:8000\"]\n");
        }
        let split = if drop_green { "{ blue = 100 }".to_owned() } else { format!("{{ blue = {blue}, green = {} }}", 100 - blue) };
        theirs.push_str(&format!("\n[[routes]]\nname = \"web\"\nsplit = {split}\n"));
        if extra_route {
            theirs.push_str("\n[[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nsplit = { blue = 100 }\n");
        }
        let merged = merge(FILE, &theirs).unwrap();
        proptest::prop_assert!(same_shared(&merged, &theirs).unwrap(), "{}", merged);
        proptest::prop_assert_eq!(local(&merged), local(FILE));
        // Merging again is a no-op.
        proptest::prop_assert_eq!(merge(&merged, &theirs).unwrap(), merged);
    }
}
