//! The flytesecret conformance suite: golden naming vectors and the machinery to check any
//! implementation against them (in-process or through the JSON Lines adapter protocol of
//! `PROTOCOL.md`).

pub mod adapter;
pub mod vectors;
