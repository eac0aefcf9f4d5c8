//! `flyteidl2.cluster.ClusterService/SelectCluster`, as much as secret clients need: the `flyte`
//! CLI asks it where to send secret requests (`OPERATION_USE_SECRETS`) before every command.
//! The Go standalone secret binary lacks it; this one answers "this endpoint".

use super::{Code, RpcError};
use crate::proto::flyteidl2::cluster::{
    SelectClusterRequest, SelectClusterResponse, select_cluster_request::Operation,
};

pub fn select_cluster(
    req: &SelectClusterRequest,
    cluster_name: &str,
) -> Result<SelectClusterResponse, RpcError> {
    match Operation::try_from(req.operation) {
        Ok(Operation::UseSecrets) => Ok(SelectClusterResponse {
            cluster_endpoint: String::new(),
            cluster: cluster_name.to_owned(),
        }),
        _ => Err(RpcError::new(
            Code::Unimplemented,
            format!(
                "SelectCluster is only served for OPERATION_USE_SECRETS here, not operation {}",
                req.operation
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_for_secrets() {
        let ok = select_cluster(
            &SelectClusterRequest {
                operation: Operation::UseSecrets as i32,
            },
            "c1",
        )
        .unwrap();
        assert_eq!(
            (ok.cluster_endpoint.as_str(), ok.cluster.as_str()),
            ("", "c1")
        );
        let no = select_cluster(
            &SelectClusterRequest {
                operation: Operation::TailLogs as i32,
            },
            "c1",
        )
        .unwrap_err();
        assert_eq!(no.code, Code::Unimplemented);
    }
}
