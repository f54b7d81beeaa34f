//! creditd: exact, low-latency credit authorization for AI products.
//!
//! Rooms: [`model`] (the semantics, pure), [`store`] (memory and Redis behind one trait),
//! [`api`] (the gRPC services, validation and error mapping), [`telemetry`] (health and
//! metrics), [`config`], [`cli`] and [`bench`] (the load generator).

pub mod bench;
pub mod error;
pub mod ledger;
pub mod model;
pub mod net;
pub mod pricing;
pub mod store;

pub mod proto {
    //! Code generated from `proto/creditd/v1/*.proto`.
    tonic::include_proto!("creditd.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("creditd_descriptor");
}

pub mod api;
pub mod cli;
pub mod config;
pub mod server;
pub mod telemetry;
