//! `/api/translation-rules`.

use serde::{Deserialize, Serialize};

use crate::ids::RuleId;

/// `POST /api/translation-rules`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTranslationRule {
    /// Principal selector: `*`, an exact principal id (`service:ci-runner`) or a glob.
    #[serde(default = "star")]
    pub principal: String,
    /// Placeholder name or glob.
    pub placeholder: String,
    /// Hosts the rule applies to (exact or `*.suffix`); must lie within the provider's hosts.
    pub hosts: Vec<String>,
    /// Path prefix (default `/`).
    #[serde(default = "slash")]
    pub path_prefix: String,
    /// Methods (empty = any).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Also substitute in request bodies (streaming, bounded).
    #[serde(default)]
    pub substitute_body: bool,
}

fn star() -> String {
    "*".to_owned()
}

fn slash() -> String {
    "/".to_owned()
}

/// A stored translation rule.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TranslationRule {
    /// Id.
    pub id: RuleId,
    /// The rule as created.
    #[serde(flatten)]
    pub rule: CreateTranslationRule,
    /// RFC 3339 creation time.
    pub created_at: String,
}
