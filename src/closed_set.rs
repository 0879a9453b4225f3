//! [`closed_set!`]: an enum whose values are stored (or sent) as fixed texts, with the
//! conversions written once. The database CHECK constraints and the wire formats name the same
//! texts, so each value's text is written next to its variant and nowhere else.

/// Declares an enum stored as text: `Variant => "text"` per value. The enum gets `Debug`,
/// `Clone`, `Copy`, `PartialEq`, `Eq` and `Hash`, and
/// - `ALL`: every value, in declaration order;
/// - `as_str`: the value's text;
/// - `parse`: the value whose text is exactly `text` (`None` for any other text).
///
/// Other attributes go through unchanged: derive `async_graphql::Enum` for a GraphQL enum (its
/// value names come from the variants, not the texts) and serde as the wire format needs.
///
/// ```ignore
/// closed_set! {
///     /// How serious a record is.
///     #[derive(async_graphql::Enum)]
///     pub enum Severity {
///         Info => "INFO",
///         Critical => "CRITICAL",
///     }
/// }
/// ```
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        #[allow(dead_code)]
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The value's stored text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value stored as `text`, exactly (case included).
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use closed_set;

#[cfg(test)]
mod tests {
    closed_set! {
        enum Level {
            Info => "INFO",
            RetryWait => "retry_wait",
        }
    }

    #[test]
    fn texts_round_trip() {
        assert_eq!(Level::ALL, [Level::Info, Level::RetryWait]);
        for level in Level::ALL {
            assert_eq!(Level::parse(level.as_str()), Some(level));
        }
        assert_eq!(Level::RetryWait.as_str(), "retry_wait");
        assert_eq!(Level::parse("info"), None);
        assert_eq!(Level::parse("RETRY_WAIT"), None);
    }
}
