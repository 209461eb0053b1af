//! The `pfc.auth.v1.AuthService` gRPC implementation.

use std::sync::Arc;

use pfc_proto::auth::v1::auth_service_server::{AuthService, AuthServiceServer};
use pfc_proto::auth::v1::{
    GetJwksRequest, GetJwksResponse, LoginRequest, LoginResponse, VerifyRequest, VerifyResponse,
};
use tonic::{Request, Response, Status};

use crate::Issuer;

/// Serves Login / Verify / GetJwks for one [`Issuer`] (whose keys may rotate: every call
/// reads the current ones).
#[derive(Debug, Clone)]
pub struct AuthGrpc {
    issuer: Arc<Issuer>,
}

impl AuthGrpc {
    /// A service issuing with `issuer`.
    pub fn new(issuer: Arc<Issuer>) -> Self {
        Self { issuer }
    }

    /// The tonic server wrapper.
    pub fn into_server(self) -> AuthServiceServer<Self> {
        AuthServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl AuthService for AuthGrpc {
    #[tracing::instrument(skip_all, fields(username = %req.get_ref().username))]
    async fn login(&self, req: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let (token, claims) = self.issuer.issue(&req.get_ref().username)?;
        tracing::info!(jti = %claims.jti, "token issued");
        Ok(Response::new(LoginResponse {
            token,
            claims: Some(claims.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn verify(
        &self,
        req: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        let token = req.get_ref().token.trim();
        let token = token.strip_prefix("Bearer ").unwrap_or(token);
        let claims = self.issuer.verifier().verify(token)?;
        Ok(Response::new(VerifyResponse {
            claims: Some(claims.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_jwks(
        &self,
        _: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        Ok(Response::new(GetJwksResponse {
            jwks_json: self.issuer.jwks_json().to_string(),
            issuer: self.issuer.issuer().into(),
            audience: self.issuer.audience().into(),
        }))
    }
}
