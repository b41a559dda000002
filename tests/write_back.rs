//! An operator's save that races an API write-back is never lost: the
//! controller re-reads the file just before its rename and plans the change
//! again on top of an edit saved meanwhile.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_saved_during_a_write_back_is_kept() {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    let proxy = TestProxy::start(&config_for(
        &[("blue", &[&blue]), ("green", &[&green])],
        "split = { blue = 100, green = 0 }",
    ))
    .await;
    let c = client();
    for round in 0..20 {
        // An editor's save (read, change, write a temporary file, rename)
        // and an API change, at the same moment.
        let path = proxy.path.clone();
        let save = tokio::task::spawn_blocking(move || {
            let text = std::fs::read_to_string(&path).unwrap();
            let tmp = path.with_extension("editor-tmp");
            std::fs::write(&tmp, format!("{text}# operator note {round}\n")).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        });
        let body = if round % 2 == 0 {
            r#"{"blue": 0, "green": 100}"#
        } else {
            r#"{"blue": 100, "green": 0}"#
        };
        let url = proxy.admin_url("/api/v1/routes/r/split");
        let api = send(&c, "PUT", &url, &[], body);
        let (saved, answer) = tokio::join!(save, api);
        saved.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let text = std::fs::read_to_string(&proxy.path).unwrap();
        for n in 0..=round {
            assert!(
                text.contains(&format!("# operator note {n}\n")),
                "round {round}: the save of note {n} was overwritten:\n{text}"
            );
        }
    }
    proxy.stop().await;
}
