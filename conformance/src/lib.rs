//! The flytesecret conformance suite: golden naming vectors and a behavioural service suite, with
//! the machinery to check any implementation against them (in-process, through the JSON Lines
//! adapter protocol of `PROTOCOL.md`, or over the wire).

pub mod adapter;
pub mod naming;
pub mod report;
pub mod service;
pub mod vectors;
