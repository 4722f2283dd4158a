//! `coffer demo` replays the walkthrough against its own server: every step must answer as AWS.

#[test]
fn demo_passes_every_step() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("demo")
        .env_remove("COFFER_LOG")
        .output()
        .expect("run coffer demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("18 steps, 18 as AWS answers, 0 different"),
        "{stdout}"
    );
    assert!(!stdout.contains("DIFFERS"), "{stdout}");
    assert!(stdout.contains("S3-Admin-User opens the file"), "{stdout}");
}
