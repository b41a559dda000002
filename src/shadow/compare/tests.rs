use bytes::Bytes;

use super::*;
use crate::config::JsonPath;

fn cfg(body: BodyCompare, ignore: &[&str]) -> CompareConfig {
    CompareConfig {
        body,
        ignore: ignore.iter().map(|p| JsonPath::parse(p).unwrap()).collect(),
        ..CompareConfig::default()
    }
}

fn kept(status: u16, body: &str) -> Answer {
    Answer {
        status,
        body: Body::Kept(Bytes::copy_from_slice(body.as_bytes())),
    }
}

fn hashed(status: u16, chunks: &[&str]) -> Answer {
    let mut h = BodyHash::default();
    for c in chunks {
        h.update(c.as_bytes());
    }
    Answer {
        status,
        body: h.finish(),
    }
}

#[test]
fn status_class_wins_over_status_wins_over_body() {
    let c = cfg(BodyCompare::Json, &[]);
    let o = compare(&c, &kept(200, "{}"), &kept(503, "oops"));
    assert_eq!(o.mismatch, Some(Kind::StatusClass));
    assert_eq!(o.diff, ["status 200 → 503"]);
    let o = compare(&c, &kept(200, "{}"), &kept(201, "{\"a\":1}"));
    assert_eq!(o.mismatch, Some(Kind::Status));
    let o = compare(&c, &kept(200, "{\"a\":1}"), &kept(200, "{\"a\":2}"));
    assert_eq!(o.mismatch, Some(Kind::Body));
    assert_eq!(o.diff, ["$.a: 1 → 2"]);
    assert_eq!(
        compare(&c, &kept(404, "{}"), &kept(404, "{ }")),
        Outcome::default()
    );
}

#[test]
fn status_only_unless_bodies_are_compared() {
    let c = cfg(BodyCompare::None, &[]);
    assert_eq!(
        compare(&c, &kept(200, "a"), &kept(200, "b")),
        Outcome::default()
    );
    let ignored = Answer {
        status: 200,
        body: Body::Ignored,
    };
    assert_eq!(compare(&c, &ignored, &ignored), Outcome::default());
}

#[test]
fn ignored_fields_do_not_mismatch() {
    let c = cfg(
        BodyCompare::Json,
        &["$.generated_at", "$.items[*].request_id"],
    );
    let a = r#"{"generated_at": 1, "items": [{"request_id": "a", "v": 1}]}"#;
    let b = r#"{"generated_at": 2, "items": [{"request_id": "b", "v": 1}]}"#;
    assert_eq!(
        compare(&c, &kept(200, a), &kept(200, b)),
        Outcome::default()
    );
}

#[test]
fn bodies_that_are_not_json_compare_byte_for_byte() {
    let c = cfg(BodyCompare::Json, &[]);
    let o = compare(&c, &kept(200, "<p>hello</p>"), &kept(200, "<p>hallo</p>"));
    assert_eq!(o.mismatch, Some(Kind::Body));
    assert_eq!(o.diff, ["body differs (12 bytes each), first at byte 4"]);
    let o = compare(&c, &kept(200, "{}"), &kept(200, "<html>"));
    assert!(o.diff[0].starts_with("mirror body is not JSON"), "{o:?}");
    let o = compare(&c, &kept(200, "plain"), &kept(200, "{}"));
    assert!(o.diff[0].starts_with("primary body is not JSON"), "{o:?}");
    let o = compare(&c, &kept(200, "abc"), &kept(200, "abcd"));
    assert_eq!(o.diff, ["body differs: 3 → 4 bytes, first at byte 3"]);
}

#[test]
fn hashes_do_not_depend_on_how_the_body_was_cut() {
    let c = cfg(BodyCompare::Hash, &[]);
    let same = compare(
        &c,
        &hashed(200, &["hello ", "world"]),
        &hashed(200, &["hel", "lo world"]),
    );
    assert_eq!(same, Outcome::default());
    let o = compare(
        &c,
        &hashed(200, &["hello world"]),
        &hashed(200, &["hello there"]),
    );
    assert_eq!(o.mismatch, Some(Kind::Body));
    assert_eq!(o.diff, ["body differs (11 bytes each)"]);
    // Kept bodies under `hash` compare bytes.
    let o = compare(&c, &kept(200, "{\"a\":1}"), &kept(200, "{\"a\": 1}"));
    assert_eq!(o.mismatch, Some(Kind::Body));
}

#[test]
fn an_unusable_body_is_skipped_not_a_mismatch() {
    let c = cfg(BodyCompare::Json, &[]);
    for why in [Unusable::TooBig, Unusable::Encoded, Unusable::Broken] {
        let bad = Answer {
            status: 200,
            body: Body::Unusable(why),
        };
        let o = compare(&c, &kept(200, "{}"), &bad);
        assert_eq!((o.mismatch, o.body_skipped), (None, true));
        let o = compare(&c, &bad, &kept(200, "{}"));
        assert_eq!((o.mismatch, o.body_skipped), (None, true));
    }
    // A status mismatch is still one.
    let bad = Answer {
        status: 500,
        body: Body::Unusable(Unusable::TooBig),
    };
    assert_eq!(
        compare(&c, &kept(200, "{}"), &bad).mismatch,
        Some(Kind::StatusClass)
    );
}

#[test]
fn kinds_have_stable_labels_in_order() {
    let labels: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(labels, ["status_class", "status", "body"]);
    for (i, k) in Kind::ALL.iter().enumerate() {
        assert_eq!(k.index(), i);
    }
}
