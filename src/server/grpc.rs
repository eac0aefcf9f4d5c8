//! gRPC (and, through tonic-web, gRPC-Web): the generated tonic service, delegating every RPC to
//! the protocol-neutral [`SecretService`].

use crate::proto::flyteidl2::secret::secret_service_server;
use crate::proto::flyteidl2::secret::*;
use crate::service::{RpcError, SecretService};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The gRPC status for a service error.
pub fn status(e: RpcError) -> Status {
    Status::new(tonic::Code::from_i32(e.code.grpc_number()), e.message)
}

pub struct GrpcSecretService(pub Arc<SecretService>);

type Reply<T> = Result<Response<T>, Status>;

/// Responses smaller than this go uncompressed even to clients that accept gzip (the protocol
/// lets a server choose per message): a gzip stream costs a deflate state of some 300 KB set up
/// per message, many times the work of the RPC itself, and saves nothing on a small message.
pub const COMPRESS_MIN_BYTES: usize = 1024;

/// A unary response, compressed (when the client accepts gzip) only from
/// [`COMPRESS_MIN_BYTES`] up.
fn reply<T: prost::Message>(message: T) -> Response<T> {
    let small = message.encoded_len() < COMPRESS_MIN_BYTES;
    let mut response = Response::new(message);
    if small {
        response.disable_compression();
    }
    response
}

#[tonic::async_trait]
impl secret_service_server::SecretService for GrpcSecretService {
    async fn create_secret(
        &self,
        req: Request<CreateSecretRequest>,
    ) -> Reply<CreateSecretResponse> {
        Ok(reply(
            self.0.create(req.into_inner()).await.map_err(status)?,
        ))
    }

    async fn update_secret(
        &self,
        req: Request<UpdateSecretRequest>,
    ) -> Reply<UpdateSecretResponse> {
        Ok(reply(
            self.0.update(req.into_inner()).await.map_err(status)?,
        ))
    }

    async fn get_secret(&self, req: Request<GetSecretRequest>) -> Reply<GetSecretResponse> {
        Ok(reply(self.0.get(req.into_inner()).await.map_err(status)?))
    }

    async fn delete_secret(
        &self,
        req: Request<DeleteSecretRequest>,
    ) -> Reply<DeleteSecretResponse> {
        Ok(reply(
            self.0.delete(req.into_inner()).await.map_err(status)?,
        ))
    }

    async fn list_secrets(&self, req: Request<ListSecretsRequest>) -> Reply<ListSecretsResponse> {
        Ok(reply(self.0.list(req.into_inner()).await.map_err(status)?))
    }
}

pub struct GrpcClusterService(pub Arc<SecretService>);

#[tonic::async_trait]
impl crate::proto::flyteidl2::cluster::cluster_service_server::ClusterService
    for GrpcClusterService
{
    async fn select_cluster(
        &self,
        req: Request<crate::proto::flyteidl2::cluster::SelectClusterRequest>,
    ) -> Reply<crate::proto::flyteidl2::cluster::SelectClusterResponse> {
        let resp =
            crate::service::cluster::select_cluster(req.get_ref(), &self.0.settings().cluster_name)
                .map_err(status)?;
        Ok(reply(resp))
    }
}
