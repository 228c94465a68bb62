//! The CLI's verbs, as the user docs name them.

#[test]
fn help_lists_the_documented_verbs() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_excalibur-ctl"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for verb in [
        "placeholder",
        "provider",
        "token",
        "service-credential",
        "translation-rule",
        "audit",
        "ca",
        "flows",
    ] {
        assert!(text.contains(verb), "missing `{verb}` in:\n{text}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_excalibur-ctl"))
        .args(["placeholder", "add", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in ["--name", "--value", "--value-file", "--provider"] {
        assert!(text.contains(flag));
    }
}
