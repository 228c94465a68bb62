//! `placeholder` and `provider`: the vault and where its values may go.

use std::process::ExitCode;

use excalibur_core::SecretString;
use excalibur_core::api::{Provider, UpsertPlaceholder};
use excalibur_ctl::cli::{PlaceholderCmd, ProviderCmd};

use super::{Columns, Ctx, read_value};

const PLACEHOLDER_COLS: Columns = &[
    ("PLACEHOLDER", "placeholder"),
    ("PROVIDER", "provider_id"),
    ("FINGERPRINT", "fingerprint"),
    ("CREATED", "created_at"),
    ("LAST ROTATED", "last_rotated_at"),
    ("EXPIRES", "expires_at"),
    ("EXPIRED", "expired"),
];

const PROVIDER_COLS: Columns = &[
    ("ID", "id"),
    ("HOSTS", "hosts"),
    ("PASSTHROUGH", "passthrough"),
];

pub(crate) async fn placeholder(ctx: &Ctx, cmd: PlaceholderCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PlaceholderCmd::Add {
            name,
            value,
            value_file,
            provider,
            route_family,
        } => {
            let body = UpsertPlaceholder {
                placeholder: name,
                real_value: SecretString::new(read_value(value, value_file)?),
                provider_id: provider,
                route_family,
                expires_at: None,
            };
            ctx.create(&["api", "placeholders"], &body, PLACEHOLDER_COLS)
                .await
        }
        PlaceholderCmd::List => ctx.list(&["api", "placeholders"], PLACEHOLDER_COLS).await,
        PlaceholderCmd::Delete { name } => ctx.delete(&["api", "placeholders", &name], &name).await,
    }
}

pub(crate) async fn provider(ctx: &Ctx, cmd: ProviderCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ProviderCmd::Add {
            id,
            hosts,
            passthrough,
            dangerous_allow_plaintext,
        } => {
            let body = Provider {
                id,
                hosts,
                passthrough,
                dangerous_allow_plaintext,
            };
            ctx.create(&["api", "providers"], &body, PROVIDER_COLS)
                .await
        }
        ProviderCmd::List => ctx.list(&["api", "providers"], PROVIDER_COLS).await,
        ProviderCmd::Delete { id } => ctx.delete(&["api", "providers", &id], &id).await,
    }
}
