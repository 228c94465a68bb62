//! `workload`: attested workloads, revocations and the kill switch.

use std::process::ExitCode;

use excalibur_core::api::Revocation;
use excalibur_ctl::cli::WorkloadCmd;

use super::{Columns, Ctx};

const WORKLOAD_COLS: Columns = &[
    ("ID", "id"),
    ("NAMESPACE", "namespace"),
    ("PRINCIPAL", "principal"),
    ("ATTESTATION", "attestation"),
    ("SOURCE", "source"),
    ("TOKEN PREFIX", "token_prefix"),
    ("CREATED", "created_at"),
];
const REVOCATION_COLS: Columns = &[
    ("ID", "id"),
    ("PRINCIPAL", "principal"),
    ("CREATED", "created_at"),
    ("BY", "actor"),
];

pub(crate) async fn workload(ctx: &Ctx, cmd: WorkloadCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        WorkloadCmd::List => ctx.list(&["api", "workloads"], WORKLOAD_COLS).await,
        WorkloadCmd::Revocations => ctx.list(&["api", "revocations"], REVOCATION_COLS).await,
        WorkloadCmd::Lift { id } => {
            ctx.client.delete(&["api", "revocations", &id]).await?;
            println!("lifted {id}");
            Ok(ExitCode::SUCCESS)
        }
        WorkloadCmd::Revoke { id, jti, principal } => {
            let body = Revocation {
                workload_id: id,
                principal,
                jti,
            };
            ctx.create(&["api", "revocations"], &body, &[("REVOKED", "revoked")])
                .await
        }
    }
}
