//! Limits checked before a request reaches the GraphQL parser, whose recursion on nested values
//! would otherwise overflow the stack (a 4 KB `[[[[…]]]]` literal aborts the process).

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};

/// Deepest nesting of brackets and braces in a query text.
pub const MAX_QUERY_NESTING: usize = 48;
/// Deepest nesting of the variables' JSON.
pub const MAX_VARIABLES_NESTING: usize = 24;
/// Most aliases in one document (aliases multiply the work of one field).
pub const MAX_ALIASES: usize = 30;
/// Longest query text.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Why a request was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The query text is too long.
    #[error("query is longer than {MAX_QUERY_BYTES} bytes")]
    TooLong,
    /// The query text nests too deeply.
    #[error("query nests deeper than {MAX_QUERY_NESTING} levels")]
    TooDeep,
    /// The variables nest too deeply.
    #[error("variables nest deeper than {MAX_VARIABLES_NESTING} levels")]
    VariablesTooDeep,
    /// Too many aliases.
    #[error("query has more than {MAX_ALIASES} aliases")]
    TooManyAliases,
}

/// Checks the nesting of a query text without parsing it: brackets, braces and parentheses,
/// skipping strings, block strings and comments.
pub fn check_query_text(query: &str) -> Result<(), GuardError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(GuardError::TooLong);
    }
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' | b'(' => {
                depth += 1;
                if depth > MAX_QUERY_NESTING {
                    return Err(GuardError::TooDeep);
                }
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Checks the nesting of the variables (already decoded by serde_json, which stops at 128).
pub fn check_variables(value: &serde_json::Value) -> Result<(), GuardError> {
    fn depth(v: &serde_json::Value, d: usize) -> Result<(), GuardError> {
        if d > MAX_VARIABLES_NESTING {
            return Err(GuardError::VariablesTooDeep);
        }
        match v {
            serde_json::Value::Array(items) => items.iter().try_for_each(|x| depth(x, d + 1)),
            serde_json::Value::Object(map) => map.values().try_for_each(|x| depth(x, d + 1)),
            _ => Ok(()),
        }
    }
    depth(value, 0)
}

/// Counts aliases in a parsed document.
pub fn check_aliases(doc: &ExecutableDocument) -> Result<(), GuardError> {
    fn count(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|s| match &s.node {
                Selection::Field(f) => {
                    usize::from(f.node.alias.is_some()) + count(&f.node.selection_set.node)
                }
                Selection::InlineFragment(f) => count(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let operations: usize =
        doc.operations.iter().map(|(_, op)| count(&op.node.selection_set.node)).sum();
    let fragments: usize = doc.fragments.values().map(|f| count(&f.node.selection_set.node)).sum();
    if operations + fragments > MAX_ALIASES { Err(GuardError::TooManyAliases) } else { Ok(()) }
}

/// The type of the operation a request will run (for GET, which may only run queries).
pub fn operation_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    doc.operations
        .iter()
        .find(|(n, _)| name.is_none() || n.map(|n| n.as_str()) == name)
        .map(|(_, op)| op.node.ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_literals_are_refused_before_parsing() {
        let deep = format!("{{ event(id: {}1{}) {{ id }} }}", "[".repeat(2048), "]".repeat(2048));
        assert_eq!(check_query_text(&deep), Err(GuardError::TooDeep));
        let objects = format!("{{ a(x: {}) }}", "{a:".repeat(1500) + &"}".repeat(1500));
        assert_eq!(check_query_text(&objects), Err(GuardError::TooDeep));
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let q = format!(
            "# {}\n{{ a(x: \"{}\") b(y: \"\"\"{}\"\"\") }}",
            "[".repeat(100),
            "{".repeat(100),
            "(".repeat(100)
        );
        assert_eq!(check_query_text(&q), Ok(()));
        assert_eq!(check_query_text("{ me { id } }"), Ok(()));
    }

    #[test]
    fn deep_variables_are_refused() {
        let mut v = serde_json::json!(1);
        for _ in 0..30 {
            v = serde_json::json!([v]);
        }
        assert_eq!(check_variables(&v), Err(GuardError::VariablesTooDeep));
        assert_eq!(check_variables(&serde_json::json!({"a": [1, {"b": 2}]})), Ok(()));
    }

    #[test]
    fn aliases_are_counted() {
        let many: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
        let doc = async_graphql::parser::parse_query(format!("{{ {many} }}")).unwrap();
        assert_eq!(check_aliases(&doc), Err(GuardError::TooManyAliases));
        let doc = async_graphql::parser::parse_query("mutation M { logout } query Q { me { id } }")
            .unwrap();
        assert_eq!(operation_type(&doc, Some("M")), Some(OperationType::Mutation));
        assert_eq!(operation_type(&doc, Some("Q")), Some(OperationType::Query));
    }
}
