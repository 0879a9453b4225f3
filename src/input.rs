//! Argument checks shared by the mutations, and the newtypes a raw argument becomes once it has
//! passed them. Every problem is `BAD_USER_INPUT` naming the argument path, so a client can point
//! at the field it got wrong.

use crate::error::{AppError, AppResult};

/// Checks an identifier used as a key (`traceId`, `runId`): 1..=`max` characters of
/// `A-Z a-z 0-9 . _ : -`.
pub fn check_id(field: &str, value: &str, max: usize) -> AppResult<()> {
    check_text(field, value, max)?;
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(AppError::bad_input(
            field,
            format!("{field} may only contain letters, digits, '.', '_', ':' and '-'"),
        ));
    }
    Ok(())
}

/// Checks a non-empty text of at most `max` characters (the column's width).
pub fn check_text(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.trim().is_empty() {
        return Err(AppError::bad_input(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(AppError::bad_input(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// [`check_text`] on an optional value.
pub fn check_opt(field: &str, value: &Option<String>, max: usize) -> AppResult<()> {
    value
        .as_deref()
        .map_or(Ok(()), |v| check_text(field, v, max))
}

/// The synthetic-data rule: a synthetic row names its scenario, and only synthetic rows do.
pub fn check_synthetic(
    prefix: &str,
    is_synthetic: bool,
    scenario: &Option<String>,
) -> AppResult<()> {
    match (is_synthetic, scenario) {
        (true, None) => Err(AppError::bad_input(
            format!("{prefix}syntheticScenarioId"),
            "synthetic data must name its syntheticScenarioId",
        )),
        (false, Some(_)) => Err(AppError::bad_input(
            format!("{prefix}isSynthetic"),
            "syntheticScenarioId is only allowed with isSynthetic: true",
        )),
        _ => check_opt(&format!("{prefix}syntheticScenarioId"), scenario, 64),
    }
}

/// A count that may not be negative (tokens, cents).
pub fn non_negative(field: &str, value: i32) -> AppResult<i32> {
    if value < 0 {
        return Err(AppError::bad_input(field, format!("{field} must be >= 0")));
    }
    Ok(value)
}

/// A SHA-256 digest as 64 lower-case hex characters.
pub fn check_sha256(field: &str, value: &str) -> AppResult<()> {
    if value.len() != 64
        || !value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(AppError::bad_input(
            field,
            format!("{field} must be a SHA-256 digest: 64 lower-case hex characters"),
        ));
    }
    Ok(())
}

/// A mutation's `idempotencyKey`: 1..=255 bytes without control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    const MAX_LEN: usize = 255;

    pub fn parse(key: String) -> AppResult<Self> {
        if key.is_empty() || key.len() > Self::MAX_LEN || key.chars().any(char::is_control) {
            return Err(AppError::bad_input(
                "idempotencyKey",
                format!(
                    "idempotencyKey must be 1 to {} bytes without control characters",
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(key))
    }

    /// The argument as given: absent is no key.
    pub fn optional(key: Option<String>) -> AppResult<Option<Self>> {
        key.map(Self::parse).transpose()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(err: AppError) -> String {
        match err {
            AppError::BadUserInput { field, .. } => field,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn ids_and_synthetic_rule() {
        assert!(check_id("input.runId", "run_abc-1.2:x", 64).is_ok());
        assert_eq!(
            field(check_id("input.runId", "run 1", 64).unwrap_err()),
            "input.runId"
        );
        assert_eq!(
            field(check_synthetic("input.", true, &None).unwrap_err()),
            "input.syntheticScenarioId"
        );
        assert_eq!(
            field(check_synthetic("input.", false, &Some("s".into())).unwrap_err()),
            "input.isSynthetic"
        );
        assert!(check_synthetic("input.", true, &Some("s".into())).is_ok());
    }

    #[test]
    fn keys_are_validated() {
        assert!(IdempotencyKey::parse("abc-123".into()).is_ok());
        let code = |k: &str| IdempotencyKey::parse(k.into()).unwrap_err().code();
        assert_eq!(code(""), "BAD_USER_INPUT");
        assert_eq!(code("a\nb"), "BAD_USER_INPUT");
        assert!(IdempotencyKey::parse("k".repeat(256)).is_err());
        assert_eq!(IdempotencyKey::optional(None).ok(), Some(None));
    }
}
