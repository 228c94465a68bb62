//! `excalibur`: the gateway server. Config, wiring, snapshot rebuilds, background
//! tasks and shutdown; nothing else.

mod bounded;
mod checkpoint;
mod config;
mod health;
mod idle;
mod init;
mod netbird;
mod record;
mod serve;
mod snapshot;
mod webhooks;

use clap::{Parser, Subcommand};

/// jemalloc, with a background thread that gives freed memory back to the OS within a
/// second (see `.cargo/config.toml`): glibc's arenas keep what a burst of connections or
/// a snapshot rebuild let go.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Excalibur: a credential-mediating egress gateway with workload identity.
#[derive(Debug, Parser)]
#[command(name = "excalibur", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: API and UI on 8443, proxy on 3128.
    Serve(Box<config::ServeArgs>),
    /// Print the OpenAPI document (the one `GET /api/openapi.json` serves) and exit.
    Openapi,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = config::Config::resolve(*args)?;
            init::logging(&config);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve::run(config))
        }
        Command::Openapi => {
            use std::io::Write as _;
            let doc = excalibur_api::openapi().to_pretty_json()?;
            match writeln!(std::io::stdout().lock(), "{doc}") {
                // `excalibur openapi | head` is not a failure.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => Ok(r?),
            }
        }
    }
}
