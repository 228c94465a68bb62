//! The command tree: no subcommand argument can take the place of a global one. A
//! subcommand argument that shares a global's id or name replaces its value, which is
//! how `webhook add --url <receiver>` once sent the admin token to the receiver.

use clap::CommandFactory as _;
use excalibur_ctl::cli::Cli;

/// Every name an argument answers to: long, short and all their aliases.
fn names(arg: &clap::Arg) -> Vec<String> {
    let mut out: Vec<String> = arg
        .get_long()
        .map(|l| format!("--{l}"))
        .into_iter()
        .collect();
    out.extend(
        arg.get_all_aliases()
            .unwrap_or_default()
            .iter()
            .map(|l| format!("--{l}")),
    );
    out.extend(arg.get_short().map(|s| format!("-{s}")));
    out.extend(
        arg.get_all_short_aliases()
            .unwrap_or_default()
            .iter()
            .map(|s| format!("-{s}")),
    );
    out
}

/// Every `(path, id, names)` below `cmd`, the globals excluded.
fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String, Vec<String>)>) {
    for sub in cmd.get_subcommands() {
        let here = format!("{path} {}", sub.get_name());
        for arg in sub.get_arguments() {
            out.push((here.clone(), arg.get_id().to_string(), names(arg)));
        }
        walk(sub, &here, out);
    }
}

#[test]
fn no_subcommand_argument_collides_with_a_global() {
    // Not built: clap copies the globals into every subcommand only at build time, so
    // what is listed below the root is what each subcommand declares itself.
    let root = Cli::command();
    let globals: Vec<&clap::Arg> = root.get_arguments().filter(|a| a.is_global_set()).collect();
    let mut global_names: Vec<String> = Vec::new();
    for g in &globals {
        global_names.push(g.get_id().to_string());
        global_names.extend(names(g));
    }
    for must in ["api_url", "--api-url", "token", "--token", "insecure_http"] {
        assert!(
            global_names.iter().any(|g| g == must),
            "`{must}` is not a global"
        );
    }
    let mut args = Vec::new();
    walk(&root, "excalibur-ctl", &mut args);
    assert!(
        args.len() > 50,
        "the walk found only {} arguments",
        args.len()
    );
    let mut collisions = Vec::new();
    for (path, id, names) in &args {
        if global_names.contains(id) {
            collisions.push(format!("{path}: argument id `{id}`"));
        }
        for n in names {
            if global_names.contains(n) {
                collisions.push(format!("{path}: `{n}`"));
            }
        }
    }
    assert!(
        collisions.is_empty(),
        "subcommand arguments collide with global options: {collisions:#?}"
    );
    // The receiver URL keeps its documented name, now that it cannot collide.
    assert!(
        args.iter()
            .any(|(p, id, n)| p == "excalibur-ctl webhook add"
                && id == "url"
                && n.contains(&"--url".to_owned()))
    );
}

#[test]
fn the_tree_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn a_receiver_url_never_becomes_the_api_base() {
    use clap::Parser as _;
    let cli = Cli::try_parse_from([
        "excalibur-ctl",
        "--api-url",
        "https://gw.example.com",
        "webhook",
        "add",
        "--url",
        "https://hooks.example.com/x",
        "--event-type",
        "credential_rotated",
    ])
    .unwrap();
    assert_eq!(cli.api_url, "https://gw.example.com");
    let cli = Cli::try_parse_from([
        "excalibur-ctl",
        "webhook",
        "add",
        "--url",
        "https://hooks.example.com/x",
        "--event-type",
        "credential_rotated",
        "--api-url",
        "https://gw2.example.com",
    ])
    .unwrap();
    assert_eq!(cli.api_url, "https://gw2.example.com");
    let excalibur_ctl::cli::Command::Webhook(excalibur_ctl::cli::WebhookCmd::Add { url, .. }) =
        cli.command
    else {
        panic!("not webhook add")
    };
    assert_eq!(url, "https://hooks.example.com/x");
}

/// The help of the tool and of every subcommand: globals under their own heading, and no
/// environment value (`[env: X=...]`) printed, set or not.
#[test]
fn help_groups_the_global_options_and_prints_no_environment_values() {
    fn check(cmd: &mut clap::Command, path: &str) {
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("Global options:"), "{path}: {help}");
        assert!(!help.contains("[env: EXCALIBUR_URL="), "{path}: {help}");
        assert!(!help.contains("[env: EXCALIBUR_CACERT="), "{path}: {help}");
        // (clap's generated `help` subcommand takes no options.)
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .filter(|n| n != "help")
            .collect();
        for name in names {
            if let Some(sub) = cmd.find_subcommand_mut(&name) {
                check(sub, &format!("{path} {name}"));
            }
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    check(&mut cmd, "excalibur-ctl");
}
