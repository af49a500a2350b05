//! Checks of user-written fields that several resources share, each
//! failing with a 422 that names the field.

use crate::error::{ApiError, ApiResult};

/// A free text: not empty when `required`, at most `max_chars`
/// characters, and no control characters but line breaks and tabs.
pub fn text(field: &str, value: &str, max_chars: usize, required: bool) -> ApiResult<()> {
    if required && value.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max_chars {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A name that policies, URLs and notifications carry (a runbook's slug, an
/// alert rule's name): 1 to `max` lowercase letters, digits and single
/// hyphens, not starting or ending with a hyphen. `what` names it in the
/// message ("a runbook's slug").
pub fn slug(field: &str, value: &str, max: usize, what: &str) -> ApiResult<()> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{what} is 1 to {max} lowercase letters, digits and single hyphens, \
                 not starting or ending with a hyphen"
            ),
        ))
    }
}

/// An optional one-word name (a service, an environment, a dependency):
/// when given, 1 to `max` characters, without spaces or control characters.
pub fn word(field: &str, value: Option<&str>, max: usize) -> ApiResult<()> {
    match value {
        Some(v)
            if v.is_empty()
                || v.len() > max
                || v.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(ApiError::invalid(
                field,
                format!("must be a name of 1 to {max} characters without spaces"),
            ))
        }
        _ => Ok(()),
    }
}
