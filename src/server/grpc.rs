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

#[tonic::async_trait]
impl secret_service_server::SecretService for GrpcSecretService {
    async fn create_secret(
        &self,
        req: Request<CreateSecretRequest>,
    ) -> Reply<CreateSecretResponse> {
        Ok(Response::new(
            self.0.create(req.into_inner()).await.map_err(status)?,
        ))
    }

    async fn update_secret(
        &self,
        req: Request<UpdateSecretRequest>,
    ) -> Reply<UpdateSecretResponse> {
        Ok(Response::new(
            self.0.update(req.into_inner()).await.map_err(status)?,
        ))
    }

    async fn get_secret(&self, req: Request<GetSecretRequest>) -> Reply<GetSecretResponse> {
        Ok(Response::new(
            self.0.get(req.into_inner()).await.map_err(status)?,
        ))
    }

    async fn delete_secret(
        &self,
        req: Request<DeleteSecretRequest>,
    ) -> Reply<DeleteSecretResponse> {
        Ok(Response::new(
            self.0.delete(req.into_inner()).await.map_err(status)?,
        ))
    }

    async fn list_secrets(&self, req: Request<ListSecretsRequest>) -> Reply<ListSecretsResponse> {
        Ok(Response::new(
            self.0.list(req.into_inner()).await.map_err(status)?,
        ))
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
        Ok(Response::new(resp))
    }
}
