//! Templates in minijinja, close to the Django templates Publik administrators know:
//! `{{ form_var_name }}`, `{% if form_var_kind == "noise" %}…{% endif %}`, filters. Used for
//! computed fields, digests, mail texts, field values set by workflows, and conditions
//! (expressions such as `form_var_age >= 18`).
//!
//! Every template is compiled when its definition is saved, so that a broken one is refused then
//! and not when a citizen submits. Rendering has a fuel budget: a template with a runaway loop
//! fails instead of holding an actor.

use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// Instructions a template may execute in one rendering.
const FUEL: u64 = 200_000;

/// A template that does not compile or failed to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// What is wrong, with the line when known.
    pub message: String,
}

impl From<minijinja::Error> for TemplateError {
    fn from(e: minijinja::Error) -> Self {
        let mut message = e.kind().to_string();
        if let Some(detail) = e.detail() {
            message = format!("{message}: {detail}");
        }
        if let Some(line) = e.line() {
            message = format!("{message} (line {line})");
        }
        Self { message }
    }
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Texts (mails, digests, field values), not HTML: nothing is escaped.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // A variable the demand does not have (an optional field left empty) renders as nothing,
    // as in Django templates.
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(FUEL));
    env
});

static HTML_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Documents are HTML: every value is escaped unless marked safe.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(FUEL));
    env
});

/// Renders an HTML document template, escaping the values it shows.
pub fn render_html(source: &str, context: &serde_json::Value) -> Result<String, TemplateError> {
    let template = HTML_ENV.template_from_str(source)?;
    Ok(template.render(Value::from_serialize(context))?)
}

/// Compiles `source`, then renders it once without variables: filters, tests and functions
/// are looked up only when used, and a misspelt one must be refused when the definition is
/// saved. Other failures of that empty rendering (arithmetic on missing values) are the data's,
/// not the template's.
pub fn check_template(source: &str) -> Result<(), TemplateError> {
    let template = ENV.template_from_str(source)?;
    unknown_names(template.render(()).map(drop))
}

/// Compiles the expression `source`, and evaluates it once without variables (see
/// [`check_template`]).
pub fn check_condition(source: &str) -> Result<(), TemplateError> {
    let expression = ENV.compile_expression(source)?;
    unknown_names(expression.eval(()).map(drop))
}

fn unknown_names(trial: Result<(), minijinja::Error>) -> Result<(), TemplateError> {
    use minijinja::ErrorKind::{UnknownFilter, UnknownFunction, UnknownTest};
    match trial {
        Err(e) if matches!(e.kind(), UnknownFilter | UnknownTest | UnknownFunction) => {
            Err(e.into())
        }
        _ => Ok(()),
    }
}

/// Renders `source` with the variables of `context` (a JSON object).
pub fn render(source: &str, context: &serde_json::Value) -> Result<String, TemplateError> {
    let template = ENV.template_from_str(source)?;
    Ok(template.render(Value::from_serialize(context))?)
}

/// Evaluates the expression `source`: true when its value is truthy.
pub fn condition(source: &str, context: &serde_json::Value) -> Result<bool, TemplateError> {
    let expression = ENV.compile_expression(source)?;
    Ok(expression.eval(Value::from_serialize(context))?.is_true())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_django_like_templates() {
        let ctx = json!({"form_var_name": "Camille", "form_var_kind": "noise"});
        assert_eq!(render("Hello {{ form_var_name|upper }}", &ctx).unwrap(), "Hello CAMILLE");
        assert_eq!(
            render("{% if form_var_kind == 'noise' %}bruit{% else %}autre{% endif %}", &ctx)
                .unwrap(),
            "bruit"
        );
        assert_eq!(render("[{{ form_var_missing }}]", &ctx).unwrap(), "[]");
    }

    #[test]
    fn conditions_are_expressions() {
        let ctx = json!({"form_var_age": 19, "form_var_consent": false});
        assert!(condition("form_var_age >= 18", &ctx).unwrap());
        assert!(!condition("form_var_consent", &ctx).unwrap());
        assert!(!condition("form_var_missing", &ctx).unwrap());
    }

    #[test]
    fn broken_templates_are_refused_with_their_line() {
        let e = check_template("ok\n{% if x %}never closed").unwrap_err();
        assert!(e.message.contains("line"), "{e}");
        assert!(check_condition("a ==").is_err());
        assert!(check_template("{{ form_var_x|no_such_filter }}").is_err());
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let e = render(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &json!({}),
        )
        .unwrap_err();
        assert!(e.message.contains("fuel"), "{e}");
    }
}
