//! The web UI settings: headless unless asked, loopback by default, basic auth required
//! anywhere else, the password never in the effective config.

use super::*;

#[test]
fn without_web_nothing_is_served() {
    let dir = TestDir::new();
    assert_eq!(dir.plan(&[], &[]).unwrap().web, None);
}

#[test]
fn web_listens_on_loopback_port_8089_by_default() {
    let dir = TestDir::new();
    let web = dir.plan(&["--web"], &[]).unwrap().web.unwrap();
    assert_eq!(web.listen, "127.0.0.1:8089".parse().unwrap());
    assert_eq!((web.auth, web.autostart, web.autoquit), (None, false, None));
}

#[test]
fn headless_false_in_the_config_file_serves_the_web_ui() {
    let dir = TestDir::new();
    dir.write("config.toml", "headless = false\nweb_port = 9001\n");
    let web = dir.plan(&[], &[]).unwrap().web.unwrap();
    assert_eq!(web.listen.port(), 9001);
}

#[test]
fn web_off_loopback_without_auth_is_refused_with_the_reason() {
    let dir = TestDir::new();
    let err = dir
        .plan(&["--web", "--web-host", "0.0.0.0"], &[])
        .unwrap_err();
    let ConfigError::Invalid(msg) = err else {
        panic!("expected a configuration error");
    };
    assert!(msg.contains("without --web-auth"), "{msg}");
}

#[test]
fn web_off_loopback_with_auth_is_served_and_the_password_is_redacted() {
    let dir = TestDir::new();
    let args = [
        "--web",
        "--web-host",
        "0.0.0.0",
        "--web-auth",
        "admin:s3cret",
    ];
    let plan = dir.plan(&args, &[]).unwrap();
    let web = plan.web.as_ref().unwrap();
    assert_eq!(web.auth, Some(("admin".into(), "s3cret".into())));
    assert!(!plan.effective_config.to_string().contains("s3cret"));
    assert_eq!(plan.effective_config["web_auth"], "<redacted>");
}

#[test]
fn malformed_web_auth_is_refused_without_echoing_it() {
    let dir = TestDir::new();
    let err = dir
        .plan(&["--web", "--web-auth", "nocolon"], &[])
        .unwrap_err();
    let ConfigError::Invalid(msg) = err else {
        panic!("expected a configuration error");
    };
    assert!(
        msg.contains("USER:PASS") && !msg.contains("nocolon"),
        "{msg}"
    );
}

#[test]
fn autostart_and_autoquit_are_read() {
    let dir = TestDir::new();
    let args = ["--web", "--autostart", "--autoquit", "5"];
    let web = dir.plan(&args, &[]).unwrap().web.unwrap();
    assert!(web.autostart);
    assert_eq!(web.autoquit, Some(std::time::Duration::from_secs(5)));
}

#[test]
fn the_web_ui_runs_until_stopped_unless_a_run_time_is_configured() {
    let dir = TestDir::new();
    assert_eq!(dir.plan(&["--web"], &[]).unwrap().run_time, None);
    let timed = dir.plan(&["--web", "-t", "5m"], &[]).unwrap();
    assert_eq!(timed.run_time, Some(std::time::Duration::from_secs(300)));
    assert!(
        dir.plan(&[], &[]).unwrap().run_time.is_some(),
        "headless keeps its default"
    );
}
