use super::*;

fn counts(requests: u64, failures: u64) -> Counts {
    Counts {
        requests,
        failures,
        buckets: vec![requests - failures, failures, 0],
    }
}

fn publication(instance: &str, epoch: u64, canary: Counts) -> Publication {
    let mut pools = BTreeMap::new();
    pools.insert("green".to_owned(), canary);
    let mut windows = BTreeMap::new();
    windows.insert("api".to_owned(), pools);
    Publication {
        instance: instance.into(),
        epoch,
        at_ms: 0,
        buckets: 3,
        windows,
        shadow: BTreeMap::new(),
    }
}

#[test]
fn the_sum_over_replicas_reaches_min_requests_that_none_reaches_alone() {
    let base = Baseline::default();
    let pubs = [
        publication("a", 1, counts(40, 8)),
        publication("b", 1, counts(35, 7)),
        publication("c", 1, counts(30, 6)),
    ];
    let (total, each) = sum(&pubs, "api", "green", &base);
    assert_eq!(total.requests, 105);
    assert_eq!(total.failures, 21);
    assert_eq!(total.buckets, vec![84, 21, 0]);
    assert!(each.iter().all(|(_, c)| c.requests < 50));
}

#[test]
fn a_step_counts_from_its_baseline_and_a_restart_from_zero() {
    let before = [
        publication("a", 1, counts(100, 10)),
        publication("b", 1, counts(50, 0)),
    ];
    let base = Baseline::take("api", &before);
    let after = [
        publication("a", 1, counts(130, 13)),
        // b restarted: its counts start again at zero, all of them new.
        publication("b", 2, counts(5, 1)),
        // c joined after the step started.
        publication("c", 9, counts(7, 0)),
    ];
    let (total, each) = sum(&after, "api", "green", &base);
    assert_eq!(total.requests, 30 + 5 + 7);
    assert_eq!(total.failures, 3 + 1);
    assert_eq!(each[0], ("a".to_owned(), counts(30, 3)));
}

#[test]
fn counts_round_trip_through_json() {
    let p = publication("a", 1, counts(3, 1));
    let json = serde_json::to_vec(&p).unwrap();
    assert_eq!(serde_json::from_slice::<Publication>(&json).unwrap(), p);
}

#[test]
fn shadow_counts_travel_with_the_publication_and_an_older_one_has_none() {
    use crate::stats::shadow::ShadowStats;
    let mut p = publication("a", 1, counts(3, 1));
    let s = ShadowStats {
        mirrored: 7,
        compared: 6,
        errors: 1,
        ..ShadowStats::default()
    };
    p.shadow
        .entry("api".into())
        .or_default()
        .insert("green".into(), s.clone());
    let json = serde_json::to_vec(&p).unwrap();
    let back = serde_json::from_slice::<Publication>(&json).unwrap();
    assert_eq!(back.shadow_of("api", "green"), Some(&s));
    // A replica of an older version publishes no shadow counts.
    let old = serde_json::to_vec(&publication("b", 1, counts(3, 1))).unwrap();
    assert!(!String::from_utf8_lossy(&old).contains("shadow"));
    let back = serde_json::from_slice::<Publication>(&old).unwrap();
    assert_eq!(back.shadow_of("api", "green"), None);
}
