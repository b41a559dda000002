use std::time::Duration;

use super::*;

fn outcome(kind: Option<Kind>, body_skipped: bool) -> Outcome {
    Outcome {
        mismatch: kind,
        body_skipped,
        diff: Vec::new(),
    }
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn every_event_is_counted_in_its_second() {
    let w = ShadowWindow::default();
    for _ in 0..10 {
        w.mirrored(5);
    }
    w.dropped(5, Dropped::InFlight);
    w.dropped(5, Dropped::BodyTooBig);
    w.dropped(5, Dropped::BodyTooBig);
    w.error(5);
    w.compared(5, &outcome(None, false), 200, MS(5), MS(6));
    w.compared(5, &outcome(Some(Kind::Body), false), 200, MS(5), MS(6));
    w.compared(
        5,
        &outcome(Some(Kind::StatusClass), false),
        503,
        MS(5),
        MS(6),
    );
    w.compared(5, &outcome(None, true), 200, MS(5), MS(6));
    w.compared(6, &outcome(Some(Kind::Status), false), 201, MS(5), MS(6));
    let s = w.last(5, 1);
    assert_eq!(s.mirrored, 10);
    assert_eq!(s.compared, 4);
    assert_eq!(s.mismatched, [1, 0, 1]);
    assert_eq!(s.errors, 1);
    assert_eq!(s.mirror_5xx, 1);
    assert_eq!(s.dropped, [1, 2]);
    assert_eq!(s.body_skipped, 1);
    assert_eq!(s.primary[bucket_of(5_000)], 4);
    assert_eq!(s.mirror[bucket_of(6_000)], 4);
    assert_eq!(s.mismatches(), 2);
    assert_eq!(s.ended(), 5);
    assert!((s.mismatch_rate() - 0.5).abs() < 1e-9);
    assert!((s.error_rate() - 0.4).abs() < 1e-9);
    let both = w.since(5, 6);
    assert_eq!((both.compared, both.mismatched), (5, [1, 1, 1]));
    assert_eq!(ShadowStats::default().mismatch_rate(), 0.0);
    assert_eq!(ShadowStats::default().error_rate(), 0.0);
    assert_eq!(ShadowStats::default().latency_ratio(0.99), None);
}

#[test]
fn a_reused_slot_starts_from_zero() {
    let w = ShadowWindow::default();
    w.mirrored(3);
    w.dropped(3, Dropped::InFlight);
    w.error(3);
    w.compared(3, &outcome(Some(Kind::Body), true), 500, MS(1), MS(1));
    let later = 3 + SLOTS as u64;
    w.mirrored(later);
    assert_eq!(
        w.last(later, 1),
        ShadowStats {
            mirrored: 1,
            ..ShadowStats::default()
        }
    );
}

#[test]
fn the_latency_ratio_is_not_stuck_on_bucket_bounds() {
    // Primary answers spread from 5 to 50 ms; the mirror takes `slower`
    // times as long on each request. Each quantile is known within its
    // bucket (ratio ≈ 1.3); interpolation keeps the ratio well inside
    // that and rising with the truth.
    let mut last = 0.0;
    for slower in [1.0, 1.1, 1.2, 1.5, 2.0, 3.0] {
        let w = ShadowWindow::default();
        for i in 0..1000u64 {
            let p = Duration::from_micros(5_000 + i * 45);
            w.compared(1, &outcome(None, false), 200, p, p.mul_f64(slower));
        }
        let r = w.last(1, 1).latency_ratio(0.99).unwrap();
        assert!((r / slower - 1.0).abs() < 0.15, "{slower}: measured {r}");
        assert!(r > last, "{slower}: measured {r}, not above {last}");
        last = r;
    }
}

#[test]
fn interpolation_stays_inside_the_bucket() {
    let mut h = [0u64; BUCKETS];
    h[10] = 100;
    for q in [0.01, 0.5, 0.99, 1.0] {
        let v = interpolated(&h, q).unwrap();
        assert!(
            v > bucket_bound_us(9) as f64 && v <= bucket_bound_us(10) as f64,
            "{q}: {v}"
        );
    }
    let mut first = [0u64; BUCKETS];
    first[0] = 1;
    assert!(interpolated(&first, 0.5).unwrap() <= 1_000.0);
    let mut over = [0u64; BUCKETS];
    over[BUCKETS - 1] = 1;
    assert_eq!(interpolated(&over, 0.99), Some(30_000_000.0));
}

#[test]
fn replicas_add_up_and_travel_as_json() {
    let (a, b) = (ShadowWindow::default(), ShadowWindow::default());
    a.compared(9, &outcome(Some(Kind::Body), false), 200, MS(5), MS(7));
    b.compared(9, &outcome(None, false), 200, MS(5), MS(900));
    b.error(9);
    b.dropped(9, Dropped::InFlight);
    let mut sum = a.last(9, 1);
    sum.add(&b.last(9, 1));
    assert_eq!((sum.compared, sum.errors, sum.dropped), (2, 1, [1, 0]));
    assert_eq!(sum.mismatched, [0, 0, 1]);
    assert_eq!(sum.mirror[bucket_of(900_000)], 1);

    let text = serde_json::to_string(&sum).unwrap();
    let back: ShadowStats = serde_json::from_str(&text).unwrap();
    assert_eq!(back, sum);
    let short = text.replacen("[", "[1,", 1);
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["primary"] = serde_json::json!([1, 2, 3]);
    let err = serde_json::from_value::<ShadowStats>(v).unwrap_err();
    assert!(err.to_string().contains("41 buckets, not 3"), "{err}");
    assert!(serde_json::from_str::<ShadowStats>(&short).is_err());
}

#[test]
fn labels_are_stable() {
    let d: Vec<&str> = Dropped::ALL.iter().map(|d| d.as_str()).collect();
    assert_eq!(d, ["in_flight", "body_too_big"]);
}

#[test]
fn a_later_total_minus_its_baseline_is_what_came_in_between() {
    let w = ShadowWindow::default();
    w.mirrored(3);
    w.compared(3, &outcome(Some(Kind::Status), false), 200, MS(5), MS(6));
    let base = w.since(0, 3);
    w.mirrored(4);
    w.error(4);
    w.compared(4, &outcome(Some(Kind::Body), true), 503, MS(5), MS(60));
    let d = w.since(0, 4).minus(&base);
    assert_eq!(d, w.last(4, 1));
    assert_eq!(
        (d.mirrored, d.compared, d.errors, d.mirror_5xx),
        (1, 1, 1, 1)
    );
    assert_eq!(d.mismatched, [0, 0, 1]);
    // A baseline bigger than the total (another epoch's) saturates at 0.
    assert_eq!(base.minus(&w.since(0, 4)), ShadowStats::default());
}
