//! flytesecret: a Rust implementation of Flyte's Secret Service (`flyteidl2.secret.SecretService`),
//! a drop-in replacement for the Go service. See ARCHITECTURE.md for the map.

pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod consumption;
pub mod gostr;
pub mod invalidation;
pub mod k8s_rules;
pub mod k8s_wire;
pub mod kubeapi;
pub mod kubeconfig;
pub mod listener;
pub mod naming;
pub mod naming_adapter;
pub mod proto;
pub mod resolve;
pub mod server;
pub mod service;
pub mod telemetry;
