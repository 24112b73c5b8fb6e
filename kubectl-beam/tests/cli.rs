//! The plugin binary as kubectl runs it.

#[test]
fn version_names_the_release() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-beam"))
        .arg("version")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        format!("kubectl-beam {}", env!("CARGO_PKG_VERSION"))
    );
}
