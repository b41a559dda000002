use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn paths(list: &[&str]) -> Vec<JsonPath> {
    list.iter().map(|p| JsonPath::parse(p).unwrap()).collect()
}

fn lines(a: &Value, b: &Value, ignore: &[&str]) -> Vec<String> {
    diff(a, b, &paths(ignore), &[], 10).lines()
}

#[test]
fn each_kind_of_difference_is_one_line_at_its_path() {
    let a = json!({"id": 7, "price": 10, "tags": ["a", "b"], "meta": {"v": 1}, "gone": true});
    let b = json!({"id": 7, "price": 12, "tags": ["a", "b", "c"], "meta": {"v": "1"}, "new": null});
    assert_eq!(
        lines(&a, &b, &[]),
        [
            "$.gone: removed (was true)",
            "$.meta.v: 1 → \"1\"",
            "$.price: 10 → 12",
            "$.tags[2]: added \"c\"",
            "$.new: added null",
        ]
    );
}

#[test]
fn ignored_fields_are_left_out_present_or_not() {
    let a = json!({"generated_at": "2026-12-01T10:00:00Z", "items": [{"id": 1, "n": "x"}, {"id": 2, "n": "y"}]});
    let b = json!({"items": [{"id": 9, "n": "x"}, {"id": 8, "n": "y"}], "request_id": "r-2"});
    let ignore = ["$.generated_at", "$.items[*].id", "$.request_id"];
    assert!(lines(&a, &b, &ignore).is_empty());
    // Without the wildcard, each id is a difference.
    assert_eq!(
        lines(&a, &b, &["$.generated_at", "$.request_id"]),
        ["$.items[0].id: 1 → 9", "$.items[1].id: 2 → 8"]
    );
}

#[test]
fn numbers_compare_by_value_and_values_are_shortened() {
    assert!(lines(&json!({"a": 1}), &json!({"a": 1.0}), &[]).is_empty());
    assert_eq!(
        lines(&json!([u64::MAX]), &json!([u64::MAX - 1]), &[]).len(),
        1
    );
    let long = "x".repeat(200);
    let l = lines(&json!({"a": long}), &json!({"a": "y"}), &[]);
    assert!(
        l[0].starts_with("$.a: \"xxxx") && l[0].contains("… → \"y\""),
        "{l:?}"
    );
    assert!(l[0].chars().count() < 80);
}

#[test]
fn the_rest_is_counted_beyond_the_limit() {
    let a = json!((0..20).collect::<Vec<_>>());
    let b = json!((100..120).collect::<Vec<_>>());
    let d = diff(&a, &b, &[], &[], 3);
    assert_eq!(d.total, 20);
    assert_eq!(d.shown.len(), 3);
    assert_eq!(d.lines().last().unwrap(), "… and 17 more");
}

#[test]
fn redacted_values_are_compared_but_never_shown() {
    let a = json!({"auth": {"token": "s3cret", "kind": "bearer"}, "user": "ann"});
    let b = json!({"auth": {"token": "other", "kind": "basic"}, "user": "bob"});
    let d = diff(&a, &b, &[], &paths(&["$.auth"]), 10);
    assert_eq!(
        d.lines(),
        [
            "$.auth.kind: [redacted] → [redacted]",
            "$.auth.token: [redacted] → [redacted]",
            "$.user: \"ann\" → \"bob\"",
        ]
    );
}

#[test]
fn odd_keys_are_quoted_in_paths() {
    let l = lines(&json!({"a b": 1, "": 2}), &json!({"a b": 2, "": 3}), &[]);
    assert_eq!(l, ["$[\"\"]: 2 → 3", "$[\"a b\"]: 1 → 2"]);
}

/// Arbitrary documents with keys the path syntax can name.
fn document() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z ]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Owned {
    Key(String),
    Index(usize),
}

/// Every position of `v` (the root included), in document order.
fn positions(v: &Value, at: &mut Vec<Owned>, out: &mut Vec<Vec<Owned>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                at.push(Owned::Key(k.clone()));
                positions(c, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                at.push(Owned::Index(i));
                positions(c, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(v: &'a mut Value, path: &[Owned]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Owned::Key(k) => &mut v[k.as_str()],
        Owned::Index(i) => &mut v[*i],
    })
}

fn rendered(path: &[Owned]) -> String {
    let steps: Vec<Step<'_>> = path
        .iter()
        .map(|s| match s {
            Owned::Key(k) => Step::Key(k),
            Owned::Index(i) => Step::Index(*i),
        })
        .collect();
    render_path(&steps)
}

proptest! {
    #[test]
    fn identical_documents_have_no_difference(doc in document()) {
        prop_assert!(diff(&doc, &doc.clone(), &[], &[], 10).is_empty());
    }

    #[test]
    fn one_changed_field_is_exactly_that_path(doc in document(), pick in any::<prop::sample::Index>()) {
        let mut all = Vec::new();
        positions(&doc, &mut Vec::new(), &mut all);
        let at = pick.get(&all[1.min(all.len() - 1)..]).clone();
        let mut changed = doc.clone();
        *at_mut(&mut changed, &at) = Value::from("__changed__");
        let d = diff(&doc, &changed, &[], &[], 10);
        prop_assert_eq!(d.total, 1, "{:?}", d);
        prop_assert_eq!(&d.shown[0].path, &rendered(&at));
        // The rendered path, as an ignore pattern, hides exactly it.
        if !at.is_empty() {
            let ignore = JsonPath::parse(&rendered(&at)).unwrap();
            prop_assert!(diff(&doc, &changed, &[ignore], &[], 10).is_empty());
        }
    }

    #[test]
    fn an_added_key_is_exactly_that_path(doc in document(), pick in any::<prop::sample::Index>()) {
        let mut all = Vec::new();
        positions(&doc, &mut Vec::new(), &mut all);
        let objects: Vec<_> = all
            .into_iter()
            .filter(|p| at_mut(&mut doc.clone(), p).is_object())
            .collect();
        prop_assume!(!objects.is_empty());
        let at = pick.get(&objects).clone();
        let mut added = doc.clone();
        at_mut(&mut added, &at)["NEW"] = Value::from(1);
        let d = diff(&doc, &added, &[], &[], 10);
        let mut path = at.clone();
        path.push(Owned::Key("NEW".into()));
        prop_assert_eq!(d.total, 1);
        prop_assert_eq!(&d.shown[0].path, &rendered(&path));
        prop_assert_eq!(&d.shown[0].change, &Change::Added("1".into()));
        // Seen from the other side it is removed.
        prop_assert_eq!(&diff(&added, &doc, &[], &[], 10).shown[0].change, &Change::Removed("1".into()));
    }
}
