//! `/api/v4/manage/ca/…`: adding an issuing intermediate (signed by fleetca's root, or a
//! CSR for the operator's), giving a pending one its certificate, making one the issuing
//! CA, and revoking one — admins only, audited, the same flows as `fleetca ca intermediate`,
//! `fleetca ca activate` and `fleetca ca revoke`. All but the revocation take effect when the
//! instances restart (see the README's "Rotating a CA").

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::Problems;
use crate::error::ApiError;
use crate::http::edge::route;
use crate::http::extract::{Admin, ApiJson, Caller};
use crate::http::problems::WriteProblems;
use crate::pki::rotation::{NewIntermediate, SignedBy, intermediate_subject};
use crate::state::AppState;
use crate::support::Error;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        (
            "/api/v4/manage/ca/intermediates",
            vec![route("POST", || web::post().to(add))],
        ),
        (
            "/api/v4/manage/ca/{id}/import",
            vec![route("POST", || web::post().to(import))],
        ),
        (
            "/api/v4/manage/ca/{id}/activate",
            vec![route("POST", || web::post().to(activate))],
        ),
        (
            "/api/v4/manage/ca/{id}/revoke",
            vec![route("POST", || web::post().to(revoke))],
        ),
    ]
}

/// Who signs the new intermediate.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum SignedByIn {
    /// fleetca's own root: the intermediate stands by at once.
    Fleetca,
    /// Your root, which fleetca never sees: the answer carries a CSR to sign, and the
    /// intermediate waits for its certificate (`POST /api/v4/manage/ca/{id}/import/`).
    Operator,
}

/// Add an issuing intermediate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddIntermediateBody {
    pub signed_by: SignedByIn,
    /// 1–64 printable characters (default "fleetca issuing CA" and the date and time).
    #[schema(min_length = 1, max_length = 64)]
    pub common_name: Option<String>,
    /// Keep its key in the PKCS#11 token of `[pkcs11]` under this label (made there unless the
    /// token has a key pair with it); none: sealed in the database.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    pub token_key: Option<String>,
}

/// The intermediate added.
#[derive(Serialize, ToSchema)]
pub struct AddedCaOut {
    pub id: i32,
    /// `standby` (signed by fleetca's root) or `pending` (waiting for your root's signature).
    pub state: String,
    /// The CSR (PEM) your root signs, when it signs.
    pub csr_pem: Option<String>,
    /// What to do next.
    pub next: String,
}

#[utoipa::path(
    post, path = "/api/v4/manage/ca/intermediates/", tag = "overview", request_body = AddIntermediateBody,
    responses((status = 201, body = AddedCaOut), WriteProblems),
    security(("bearer" = []))
)]
pub async fn add(
    state: web::Data<AppState>,
    admin: Caller<Admin>,
    ApiJson(body): ApiJson<AddIntermediateBody>,
) -> Result<HttpResponse, ApiError> {
    let mut problems = Problems::new();
    let subject = problems.check(
        "common_name",
        intermediate_subject(
            state.config.ca_organization.clone(),
            body.common_name,
            fleetca_storage::now(),
        )
        .map_err(|_| "a CA's common name is 1 to 64 printable characters".to_owned()),
    );
    problems.finish()?;
    let Some(subject) = subject else {
        return Err(Error::invalid("common_name", "a CA's common name is 1 to 64 printable characters").into());
    };
    let signed_by = match body.signed_by {
        SignedByIn::Fleetca => SignedBy::FleetcaRoot,
        SignedByIn::Operator => SignedBy::OperatorRoot,
    };
    let added = state
        .authorities
        .add(
            &admin,
            NewIntermediate {
                signed_by,
                subject,
                token_key: body.token_key,
            },
        )
        .await?;
    let id = added.id;
    let next = match signed_by {
        SignedBy::FleetcaRoot => format!(
            "CA {id} stands by: restart every instance (it is then trusted and its CRL published), give brokers the new trust bundle (GET /ca.pem), then POST /api/v4/manage/ca/{id}/activate/ and restart again"
        ),
        SignedBy::OperatorRoot => format!(
            "have your root sign csr_pem (basicConstraints=critical,CA:TRUE,pathlen:0; keyUsage=critical,keyCertSign,cRLSign), then POST /api/v4/manage/ca/{id}/import/ with the certificate and your root"
        ),
    };
    Ok(HttpResponse::build(StatusCode::CREATED).json(AddedCaOut {
        id,
        state: added.state.as_str().into(),
        csr_pem: added.csr_pem,
        next,
    }))
}

/// The certificate your root signed for a pending intermediate, and that root.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// The intermediate's certificate (PEM).
    #[schema(max_length = 16384)]
    pub certificate_pem: String,
    /// Your root's certificate (PEM).
    #[schema(max_length = 16384)]
    pub root_pem: String,
}

/// The intermediate imported: it stands by.
#[derive(Serialize, ToSchema)]
pub struct ImportedOut {
    pub id: i32,
    pub subject: String,
    pub not_after: DateTime<Utc>,
    /// The root was new to fleetca and is stored beside the others (trusted from the next
    /// start).
    pub new_root: bool,
    pub next: String,
}

/// A CA id in a path: a malformed one names nothing.
fn ca_id(raw: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::NotFound("CA").into())
}

#[utoipa::path(
    post, path = "/api/v4/manage/ca/{id}/import/", tag = "overview", params(("id" = i32, Path)), request_body = ImportBody,
    responses((status = 200, body = ImportedOut), WriteProblems),
    security(("bearer" = []))
)]
pub async fn import(
    state: web::Data<AppState>,
    admin: Caller<Admin>,
    id: web::Path<String>,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<HttpResponse, ApiError> {
    let id = ca_id(&id)?;
    let imported = state
        .authorities
        .import(&admin, id, &body.certificate_pem, &body.root_pem)
        .await?;
    Ok(HttpResponse::Ok().json(ImportedOut {
        id: imported.id,
        subject: imported.subject,
        not_after: imported.not_after,
        new_root: imported.new_root,
        next: format!(
            "CA {id} stands by: restart every instance (it is then trusted and its CRL published), give brokers the new trust bundle (GET /ca.pem) and clients the new root, then POST /api/v4/manage/ca/{id}/activate/ and restart again"
        ),
    }))
}

/// The intermediate that issues from the next start.
#[derive(Serialize, ToSchema)]
pub struct ActivatedOut {
    pub id: i32,
    pub next: String,
}

#[utoipa::path(
    post, path = "/api/v4/manage/ca/{id}/activate/", tag = "overview", params(("id" = i32, Path)),
    responses((status = 200, body = ActivatedOut), WriteProblems),
    security(("bearer" = []))
)]
pub async fn activate(
    state: web::Data<AppState>,
    admin: Caller<Admin>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ca_id(&id)?;
    state.authorities.activate(&admin, id).await?;
    Ok(HttpResponse::Ok().json(ActivatedOut {
        id,
        next: format!(
            "CA {id} issues every new certificate from the next start of each instance: restart them all; the CA before it retires (its CRL stays published while certificates it signed are valid)"
        ),
    }))
}

/// Why the intermediate is revoked.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeCaBody {
    /// RFC 5280's reason: `keyCompromise` or `cACompromise` when its key may be known to
    /// someone else (its root's CRL and its certificates then say `cACompromise`), else
    /// `superseded`, `cessationOfOperation`, `affiliationChanged`, `privilegeWithdrawn` or
    /// `unspecified` (its certificates take the same reason).
    #[schema(
        example = "keyCompromise",
        pattern = "^(unspecified|keyCompromise|cACompromise|affiliationChanged|superseded|cessationOfOperation|privilegeWithdrawn)$"
    )]
    pub reason: String,
}

/// The intermediate revoked.
#[derive(Serialize, ToSchema)]
pub struct RevokedCaOut {
    pub id: i32,
    /// Its serial (hex), as its root's CRL lists it.
    pub serial: String,
    pub reason: String,
    /// How many unexpired certificates it signed were revoked with it.
    pub certificates_revoked: usize,
    /// Whether fleetca's own root lists it on its CRL (published now); false: the root is
    /// yours, and must list it.
    pub listed_by_root: bool,
    pub next: String,
}

#[utoipa::path(
    post, path = "/api/v4/manage/ca/{id}/revoke/", tag = "overview", params(("id" = i32, Path)), request_body = RevokeCaBody,
    responses(
        (status = 200, description = "Revoked, with every unexpired certificate it signed; this instance's CRLs list them", body = RevokedCaOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    state: web::Data<AppState>,
    admin: Caller<Admin>,
    id: web::Path<String>,
    ApiJson(body): ApiJson<RevokeCaBody>,
) -> Result<HttpResponse, ApiError> {
    let id = ca_id(&id)?;
    let reason = crate::pki::http::certificates::reason(Some(&body.reason))?;
    let revoked = state.authorities.revoke(&admin, id, reason).await?;
    let root = if revoked.root_held {
        "its root's CRL lists it now (every instance's after its restart)".to_owned()
    } else {
        format!("its root is yours: list serial {} on your root's CRL", revoked.serial)
    };
    Ok(HttpResponse::Ok().json(RevokedCaOut {
        id,
        certificates_revoked: revoked.certificates.len(),
        listed_by_root: revoked.root_held,
        next: format!(
            "CA {id} is revoked; {} certificates it signed are revoked and their sessions end; {root}. Restart every instance (the trust bundle then leaves it out) and give brokers the new bundle (GET /ca.pem)",
            revoked.certificates.len()
        ),
        serial: revoked.serial,
        reason: reason.name().into(),
    }))
}
