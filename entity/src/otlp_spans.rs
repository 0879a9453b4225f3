//! `otlp_spans`: the spans the OTLP receiver stored, one row per (tenant, trace, span id), so a
//! retried batch is stored once (see `src/otlp/`).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "otlp_spans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub trace_id: String,
    /// 16 lower-case hex digits.
    #[sea_orm(primary_key, auto_increment = false)]
    pub span_id: String,
    pub is_root: bool,
    /// The span's status was ERROR.
    pub failed: bool,
    /// A root span whose trace is not sealed yet (always false for other spans).
    pub open: bool,
    /// The step the span became; none for the root span.
    pub step_index: Option<i32>,
    /// The span's end (Unix nanoseconds; saturated at i64::MAX).
    pub end_unix_nano: i64,
    pub received_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
