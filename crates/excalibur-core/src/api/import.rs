//! `POST /api/import`.

use serde::{Deserialize, Serialize};

use super::credentials::{CreateServiceCredential, CreatedServiceCredential};
use super::rules::{CreateTranslationRule, TranslationRule};
use super::vault::{Provider, UpsertPlaceholder, UpsertedPlaceholder};

/// `POST /api/import`: many objects at once, written in one transaction (all or
/// nothing), each with the audit event its own endpoint writes.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Providers (created or replaced), written first.
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// Placeholders (created or rotated).
    #[serde(default)]
    pub placeholders: Vec<UpsertPlaceholder>,
    /// Translation rules (created).
    #[serde(default)]
    pub translation_rules: Vec<CreateTranslationRule>,
    /// Service credentials (created; their tokens are in the answer, once).
    #[serde(default)]
    pub service_credentials: Vec<CreateServiceCredential>,
}

/// The answer to `POST /api/import`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportResponse {
    /// Providers as stored.
    pub providers: Vec<Provider>,
    /// Placeholders as stored (fingerprints only).
    pub placeholders: Vec<UpsertedPlaceholder>,
    /// Rules as stored.
    pub translation_rules: Vec<TranslationRule>,
    /// Credentials with their tokens (shown once).
    pub service_credentials: Vec<CreatedServiceCredential>,
}
