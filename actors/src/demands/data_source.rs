//! Named data sources (w.c.s. "sources de données"): a list of choices defined once and shared
//! by the item fields of many forms — written out, read from a JSON web service, or the cards
//! of a card model. Saving one keeps a version, as forms and workflows do; forms name it by
//! slug, so a change reaches every form at once.

use serde::{Deserialize, Serialize};

use super::form::{Choice, Choices, DefinitionError, is_slug};
use crate::ids::DataSourceId;

/// A data source as administrators define it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSourceDef {
    /// Identifier, stable across versions.
    pub id: DataSourceId,
    /// Unique name forms refer to.
    pub slug: String,
    /// Name.
    pub name: String,
    /// Where the choices come from.
    pub source: DataSourceKind,
    /// Version number, from 1.
    #[serde(default = "one")]
    pub version: u32,
}

fn one() -> u32 {
    1
}

/// Where a data source's choices come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DataSourceKind {
    /// A written list.
    Static {
        /// The choices.
        items: Vec<Choice>,
    },
    /// A JSON web service answering `{"data": [{"id": …, "text": …}]}`.
    WebService {
        /// Its URL.
        url: String,
    },
    /// The cards of a card model.
    Cards {
        /// The card model's slug.
        model: String,
    },
}

impl DataSourceKind {
    /// The same list as a field's choices.
    pub fn choices(&self) -> Choices {
        match self {
            DataSourceKind::Static { items } => Choices::Static { items: items.clone() },
            DataSourceKind::WebService { url } => Choices::WebService { url: url.clone() },
            DataSourceKind::Cards { model } => Choices::Cards { model: model.clone() },
        }
    }
}

impl DataSourceDef {
    /// Checks the definition as a field's choices are checked.
    pub fn check(&self) -> Result<(), DefinitionError> {
        if !is_slug(&self.slug) {
            return Err(DefinitionError(format!(
                "slug {:?}: lowercase letters, digits and dashes, starting with a letter",
                self.slug
            )));
        }
        if self.name.trim().is_empty() {
            return Err(DefinitionError("a data source needs a name".into()));
        }
        super::form::check_choices(&self.source.choices()).map_err(DefinitionError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sources_are_checked_like_choices() {
        let mut def = DataSourceDef {
            id: DataSourceId::new(),
            slug: "quartiers".into(),
            name: "Quartiers".into(),
            source: DataSourceKind::Static {
                items: vec![Choice { id: "nord".into(), text: "Nord".into(), disabled: false }],
            },
            version: 1,
        };
        assert!(def.check().is_ok());
        def.source = DataSourceKind::Static { items: vec![] };
        assert!(def.check().is_err());
        def.source = DataSourceKind::WebService { url: "file:///etc/passwd".into() };
        assert!(def.check().is_err());
        def.source = DataSourceKind::Cards { model: "Not A Slug".into() };
        assert!(def.check().is_err());
        def.source = DataSourceKind::Cards { model: "ecoles".into() };
        def.slug = "Quartiers!".into();
        assert!(def.check().is_err());
    }
}
