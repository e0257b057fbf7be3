//! Application bundles: an instance's workflows, forms, card models, named data sources and
//! agendas, with the roles and categories they name, as one zip of JSON that imports into
//! another instance.
//!
//! Import matches definitions by slug, not by id, so that importing the same bundle twice
//! changes nothing the second time; a definition that exists with other content is a conflict,
//! reported and left alone unless the import says to overwrite (a new version). Every
//! definition of the bundle is checked before anything is written.

use std::collections::BTreeSet;
use std::io::{Read, Seek, Write};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::data_source::DataSourceDef;
use super::form::FormDef;
use super::model::DemandError;
use super::workflow::WorkflowDef;
use crate::agenda_definition::AgendaDefinition;

/// The format name in `manifest.json`.
pub const FORMAT: &str = "guichet-bundle";
/// The format version written and read.
pub const FORMAT_VERSION: u32 = 1;
/// Most entries a bundle may hold.
const MAX_ENTRIES: usize = 2_000;
/// Largest entry, uncompressed.
const MAX_ENTRY_BYTES: u64 = 5 << 20;

/// What a bundle holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bundle {
    /// Workflows.
    pub workflows: Vec<WorkflowDef>,
    /// Forms and card models.
    pub forms: Vec<FormDef>,
    /// Named data sources.
    pub data_sources: Vec<DataSourceDef>,
    /// Agendas (settings, meeting types, desks and opening periods; no bookings).
    pub agendas: Vec<AgendaDefinition>,
    /// Agent roles the definitions name (functions, summary and submission roles).
    pub roles: Vec<String>,
    /// Categories of the forms.
    pub categories: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    created_at: String,
    workflows: Vec<String>,
    forms: Vec<String>,
    #[serde(default)]
    data_sources: Vec<String>,
    #[serde(default)]
    agendas: Vec<String>,
    roles: Vec<String>,
    categories: Vec<String>,
}

impl Bundle {
    /// A bundle of these definitions, with the roles and categories they name.
    pub fn of(
        workflows: Vec<WorkflowDef>,
        forms: Vec<FormDef>,
        data_sources: Vec<DataSourceDef>,
        agendas: Vec<AgendaDefinition>,
    ) -> Self {
        let mut roles = BTreeSet::new();
        let mut categories = BTreeSet::new();
        for a in &agendas {
            roles.extend(a.services.iter().cloned());
            categories.extend(a.category.iter().cloned());
        }
        for f in &forms {
            roles.extend(f.function_roles.values().cloned());
            roles.extend(f.summary_roles.iter().cloned());
            roles.extend(f.backoffice_submission_roles.iter().cloned());
            categories.extend(f.category.iter().cloned());
        }
        Self {
            workflows,
            forms,
            data_sources,
            agendas,
            roles: roles.into_iter().collect(),
            categories: categories.into_iter().collect(),
        }
    }

    /// Writes the bundle as a zip: `manifest.json`, `workflows/<slug>.json`, `forms/<slug>.json`.
    pub fn write<W: Write + Seek>(&self, out: W) -> Result<(), DemandError> {
        let failed = |e: zip::result::ZipError| DemandError::Unavailable(format!("zip: {e}"));
        let mut zip = zip::ZipWriter::new(out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let manifest = Manifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            created_at: Timestamp::now().to_string(),
            workflows: self.workflows.iter().map(|w| w.slug.clone()).collect(),
            forms: self.forms.iter().map(|f| f.slug.clone()).collect(),
            data_sources: self.data_sources.iter().map(|d| d.slug.clone()).collect(),
            agendas: self.agendas.iter().map(|a| a.slug.clone()).collect(),
            roles: self.roles.clone(),
            categories: self.categories.clone(),
        };
        let mut entries: Vec<(String, Vec<u8>)> =
            vec![("manifest.json".into(), to_json(&manifest)?)];
        for w in &self.workflows {
            entries.push((format!("workflows/{}.json", w.slug), to_json(w)?));
        }
        for f in &self.forms {
            entries.push((format!("forms/{}.json", f.slug), to_json(f)?));
        }
        for d in &self.data_sources {
            entries.push((format!("data-sources/{}.json", d.slug), to_json(d)?));
        }
        for a in &self.agendas {
            entries.push((format!("agendas/{}.json", a.slug), to_json(a)?));
        }
        for (name, bytes) in entries {
            zip.start_file(name, options).map_err(failed)?;
            zip.write_all(&bytes).map_err(|e| DemandError::Unavailable(e.to_string()))?;
        }
        zip.finish().map_err(failed)?;
        Ok(())
    }

    /// Reads a bundle; anything that is not one is refused with the reason.
    pub fn read<R: Read + Seek>(input: R) -> Result<Self, DemandError> {
        let bad = |m: String| DemandError::Invalid(format!("not a Guichet bundle: {m}"));
        let mut zip = zip::ZipArchive::new(input).map_err(|e| bad(e.to_string()))?;
        if zip.len() > MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let mut read_entry = |name: &str| -> Result<Vec<u8>, DemandError> {
            let entry = zip.by_name(name).map_err(|e| bad(format!("{name}: {e}")))?;
            if entry.size() > MAX_ENTRY_BYTES {
                return Err(bad(format!("{name} is too large")));
            }
            let mut bytes = Vec::new();
            entry
                .take(MAX_ENTRY_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            Ok(bytes)
        };
        let manifest: Manifest = serde_json::from_slice(&read_entry("manifest.json")?)
            .map_err(|e| bad(format!("manifest.json: {e}")))?;
        if manifest.format != FORMAT || manifest.version != FORMAT_VERSION {
            return Err(bad(format!(
                "format {} version {} (this instance reads {FORMAT} {FORMAT_VERSION})",
                manifest.format, manifest.version
            )));
        }
        let mut bundle =
            Bundle { roles: manifest.roles, categories: manifest.categories, ..Default::default() };
        for slug in &manifest.workflows {
            let name = format!("workflows/{slug}.json");
            let w: WorkflowDef = serde_json::from_slice(&read_entry(&name)?)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            bundle.workflows.push(w);
        }
        for slug in &manifest.forms {
            let name = format!("forms/{slug}.json");
            let f: FormDef = serde_json::from_slice(&read_entry(&name)?)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            bundle.forms.push(f);
        }
        for slug in &manifest.data_sources {
            let name = format!("data-sources/{slug}.json");
            let d: DataSourceDef = serde_json::from_slice(&read_entry(&name)?)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            bundle.data_sources.push(d);
        }
        for slug in &manifest.agendas {
            let name = format!("agendas/{slug}.json");
            let a: AgendaDefinition = serde_json::from_slice(&read_entry(&name)?)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            bundle.agendas.push(a);
        }
        Ok(bundle)
    }
}

/// What an import did, definition by definition (`workflow:<slug>`, `form:<slug>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Created here.
    pub created: Vec<String>,
    /// Saved as a new version (overwrite).
    pub updated: Vec<String>,
    /// Already here, identical.
    pub unchanged: Vec<String>,
    /// Here with other content, left alone: `(name, why)`.
    pub conflicts: Vec<(String, String)>,
    /// Nothing was written (a dry run).
    pub dry_run: bool,
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, DemandError> {
    serde_json::to_vec_pretty(value).map_err(|e| DemandError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_but_a_bundle_is_refused() {
        let e = Bundle::read(std::io::Cursor::new(b"not a zip".to_vec())).unwrap_err();
        assert!(e.to_string().starts_with("not a Guichet bundle"), "{e}");
        let mut other = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut other);
            zip.start_file("manifest.json", zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(br#"{"format":"w.c.s.","version":1,"created_at":"","workflows":[],"forms":[],"roles":[],"categories":[]}"#).unwrap();
            zip.finish().unwrap();
        }
        other.set_position(0);
        let e = Bundle::read(other).unwrap_err();
        assert!(e.to_string().contains("w.c.s."), "{e}");
        let mut empty = std::io::Cursor::new(Vec::new());
        Bundle::default().write(&mut empty).unwrap();
        empty.set_position(0);
        assert_eq!(Bundle::read(empty).unwrap(), Bundle::default());
    }
}
