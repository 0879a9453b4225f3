//! `otlp_root_spans`: the root span of each trace the OTLP receiver stored, so a retried root
//! is stored once and the quiet-period sealer finds the traces still open (see `src/otlp/`).
//! A child span has no row here: it is the step whose idempotency key is `otel:<trace>:<span>`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "otlp_root_spans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub trace_id: String,
    /// 16 lower-case hex digits.
    #[sea_orm(primary_key, auto_increment = false)]
    pub span_id: String,
    /// The span's status was ERROR.
    pub failed: bool,
    /// The trace is not sealed yet.
    pub open: bool,
    /// The span's end (Unix nanoseconds; saturated at i64::MAX).
    pub end_unix_nano: i64,
    /// When a span of the trace last arrived while this root was open (Unix milliseconds).
    pub received_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
