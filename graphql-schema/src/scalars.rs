//! Custom scalars.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use jiff::Timestamp;

/// An instant, written in RFC 3339 with an offset (`2026-03-29T03:15:00+02:00` or `...Z`).
/// Read back in Europe/Paris time with its offset of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub Timestamp);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(s) = &value else {
            return Err(InputValueError::expected_type(value));
        };
        s.parse::<Timestamp>().map(DateTime).map_err(|_| {
            InputValueError::custom(format!(
                "{s:?} is not an RFC 3339 date-time with an offset, like 2026-06-01T10:00:00+02:00"
            ))
        })
    }

    fn to_value(&self) -> Value {
        let zoned = self.0.to_zoned(actors::time::paris());
        Value::String(zoned.timestamp().display_with_offset(zoned.offset()).to_string())
    }
}
