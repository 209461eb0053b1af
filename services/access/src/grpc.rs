//! `pfc.jobs.v1.ApiKeyService`: create, list and revoke API keys over gRPC (the guard's table
//! makes every method `jobs:admin`).

use std::sync::Arc;

use pfc_auth::Scopes;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::api_key_service_server::{ApiKeyService, ApiKeyServiceServer};
use tonic::{Request, Response, Status};

use crate::apikeys::KeyRecord;
use crate::{AccessError, ApiKeys};

/// Most kinds one worker key may be limited to.
pub const MAX_KINDS: usize = 64;

/// The service over one [`ApiKeys`].
#[derive(Debug, Clone)]
pub struct ApiKeyGrpc {
    keys: Arc<ApiKeys>,
}

impl ApiKeyGrpc {
    /// A service managing `keys`.
    pub fn new(keys: Arc<ApiKeys>) -> Self {
        Self { keys }
    }

    /// The tonic server wrapper.
    pub fn into_server(self) -> ApiKeyServiceServer<Self> {
        ApiKeyServiceServer::new(self)
    }
}

/// The listed form of a record (never the salt or hash).
pub fn to_proto(r: &KeyRecord) -> pb::ApiKey {
    pb::ApiKey {
        id: r.id.clone(),
        name: r.name.clone(),
        scopes: r.scopes().names(),
        kinds: r.kinds.clone(),
        created_at: Some(pfc_proto::timestamp_from_ms(r.created_ms)),
        revoked_at: r.revoked_ms.map(pfc_proto::timestamp_from_ms),
    }
}

fn parse_kinds(kinds: Vec<String>) -> Result<Vec<String>, AccessError> {
    if kinds.len() > MAX_KINDS {
        return Err(AccessError::InvalidArgument(format!(
            "kinds: at most {MAX_KINDS} (got {})",
            kinds.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(kinds.len());
    for k in kinds {
        let ok = !k.is_empty()
            && k.len() <= 64
            && k.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && k.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if !ok {
            return Err(AccessError::InvalidArgument(format!(
                "kinds: {:?} is not a kind: use [a-z0-9][a-z0-9._-]{{0,63}}",
                k.chars().take(80).collect::<String>()
            )));
        }
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeyGrpc {
    #[tracing::instrument(skip_all, fields(name = %req.get_ref().name))]
    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let req = req.into_inner();
        let scopes = Scopes::parse(&req.scopes.join(" "))
            .map_err(|e| AccessError::InvalidArgument(format!("scopes: {e}")))?;
        let kinds = parse_kinds(req.kinds)?;
        let (key, record) = self.keys.create(&req.name, scopes, kinds).await?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            key,
            api_key: Some(to_proto(&record)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_api_keys(
        &self,
        _: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let keys = self.keys.list().await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.iter().map(to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn revoke_api_key(
        &self,
        req: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let id = req.into_inner().id;
        if id.is_empty() || id.len() > 64 {
            return Err(Status::invalid_argument(
                "id: the key's id (1-64 characters)",
            ));
        }
        if !self.keys.revoke(&id).await? {
            return Err(Status::not_found(format!("no API key with id {id:?}")));
        }
        Ok(Response::new(pb::RevokeApiKeyResponse {}))
    }
}
