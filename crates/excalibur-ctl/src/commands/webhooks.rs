//! `webhook`: receivers of audit events and their delivery logs.

use std::process::ExitCode;

use excalibur_core::api::CreateWebhook;
use excalibur_ctl::cli::WebhookCmd;

use super::{Columns, Ctx};

const CREATED_COLS: Columns = &[
    ("ID", "id"),
    ("URL", "url"),
    ("SECRET (shown once)", "secret"),
];
const LIST_COLS: Columns = &[
    ("ID", "id"),
    ("URL", "url"),
    ("EVENT TYPES", "event_types"),
    ("SECRET", "secret_fingerprint"),
];
const DELIVERY_COLS: Columns = &[
    ("DELIVERY", "id"),
    ("EVENT", "event_type"),
    ("SEQ", "event_seq"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("LAST STATUS", "last_status"),
    ("LAST ERROR", "last_error"),
];

pub(crate) async fn webhook(ctx: &Ctx, cmd: WebhookCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        // `url` is the receiver: the CLI never contacts it, and the token goes only to
        // the API base.
        WebhookCmd::Add { url, event_types } => {
            let body = CreateWebhook {
                url,
                event_types,
                secret: None,
            };
            ctx.create(&["api", "webhooks"], &body, CREATED_COLS).await
        }
        WebhookCmd::List => ctx.list(&["api", "webhooks"], LIST_COLS).await,
        WebhookCmd::Deliveries { id } => {
            ctx.list(&["api", "webhooks", &id, "deliveries"], DELIVERY_COLS)
                .await
        }
        WebhookCmd::Delete { id } => ctx.delete(&["api", "webhooks", &id], &id).await,
    }
}
