//! `switchyard ctl rolling-update` and the requests in flight: the
//! command runs only once a drained backend has finished its requests, and
//! an interrupt (SIGINT) stops the command and leaves its backend drained,
//! or, during the drain wait, puts the backend back.

mod support;

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use support::admin::backend_states;
use support::cli::{ctl_env, interrupt_at, spawn_ctl};
use support::rolling::{slow_request, two_backends, TIMEOUTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_runs_only_after_in_flight_requests_finish() {
    let (a, b, proxy) = two_backends().await;
    let (slow, busy) = slow_request(&proxy, 1500, [&a, &b]).await;
    let dir = tempfile::tempdir().unwrap();
    let exec = format!("date +%s%N > {}/ran-{{port}}", dir.path().display());
    let mut args = vec!["rolling-update", "web", "--exec", &exec];
    args.extend(TIMEOUTS);
    let (code, stdout, stderr) = ctl_env(&proxy, &args, &[]).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (status, done) = slow.await.unwrap();
    assert_eq!(status, 200, "the drained backend finished its request");
    assert!(
        stdout.contains(&format!("{busy} drain: waiting for 1 in-flight request(s)")),
        "{stdout}"
    );
    let ran = std::fs::read_to_string(dir.path().join(format!("ran-{}", busy.port()))).unwrap();
    let ran = UNIX_EPOCH + Duration::from_nanos(ran.trim().parse().unwrap());
    // `done` is taken once the client has the whole body, a moment after
    // the proxy's in-flight count dropped: allow that moment.
    assert!(
        ran + Duration::from_millis(300) >= done,
        "the command ran before the request ended"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupting_stops_the_command_and_leaves_its_backend_drained() {
    let (a, _b, proxy) = two_backends().await;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let exec = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let mut args = vec!["rolling-update", "web", "--exec", &exec];
    args.extend(TIMEOUTS);
    let child = spawn_ctl(&proxy, &args);
    let (code, stdout, stderr) = interrupt_at(child, "exec: running", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))
    })
    .await;
    assert_eq!(code, 130, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{} interrupted at stage exec", a.addr)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("switchyard ctl undrain web {}", a.addr)),
        "{stderr}"
    );
    // The command was stopped and reaped before the ctl exited.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "sleep {pid} still runs"
    );
    let draining: Vec<bool> = backend_states(&proxy, "web")
        .await
        .iter()
        .map(|s| s.1)
        .collect();
    assert_eq!(draining, [true, false]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupting_the_drain_wait_puts_the_backend_back() {
    let (a, b, proxy) = two_backends().await;
    let (slow, busy) = slow_request(&proxy, 4000, [&a, &b]).await;
    let mut args = vec!["rolling-update", "web", "--exec", "true"];
    args.extend(TIMEOUTS);
    let child = spawn_ctl(&proxy, &args);
    let needle = format!("{busy} drain: waiting for 1 in-flight request(s)");
    let (code, stdout, stderr) = interrupt_at(child, &needle, || true).await;
    assert_eq!(code, 130, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{busy} interrupted at stage drain")),
        "{stderr}"
    );
    assert!(
        stderr.contains("it is not drained, and its command did not run"),
        "{stderr}"
    );
    let draining: Vec<bool> = backend_states(&proxy, "web")
        .await
        .iter()
        .map(|s| s.1)
        .collect();
    assert_eq!(
        draining,
        [false, false],
        "the untouched backend is undrained"
    );
    assert_eq!(slow.await.unwrap().0, 200);
    proxy.stop().await;
}
