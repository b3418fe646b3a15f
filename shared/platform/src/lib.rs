//! Platform code every service binary shares: configuration, telemetry, the Postgres pool
//! with embedded migrations, and the ops HTTP server. Nothing here knows any one service.

pub mod config;
pub mod db;
pub mod ops;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
