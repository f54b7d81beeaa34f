//! The gRPC services. Filled in by the server work.
