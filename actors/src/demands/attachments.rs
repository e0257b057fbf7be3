//! Attachments: files uploaded before submission (the GraphQL multipart request), checked
//! against their field's size and type limits on submission, and kept under the data folder.
//!
//! An upload is a file `<files>/<id>` and a record naming its uploader; a submission claims it
//! for its demand in the demand's transaction (so one upload is never attached twice), and
//! uploads nobody claimed within a day are purged. A declared type the server can recognise
//! (PDF, PNG, JPEG, GIF, WebP, ZIP-based office documents) must match the file's first bytes:
//! a program renamed `.pdf` is refused as what it is.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::DemandError;
use crate::ids::{AccountId, DemandId};

/// Largest upload accepted at all (a field may set less).
pub const MAX_UPLOAD_BYTES: u64 = 25 << 20;
/// Default limit of a file field.
pub const DEFAULT_FIELD_BYTES: u64 = 10 << 20;

/// A stored upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// Identifier (random: it names the file).
    pub id: String,
    /// Who uploaded it (none: someone without an account).
    pub owner: Option<AccountId>,
    /// Its name, cleaned.
    pub filename: String,
    /// Its type, checked against its content where recognisable.
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// When.
    pub created_at: Timestamp,
    /// The demand it is attached to, once submitted.
    pub demand: Option<DemandId>,
}

/// An attachment of a demand, as its data records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The field it answers (`children.1.photo` inside a block).
    pub field: String,
    /// The upload.
    pub upload: String,
    /// File name.
    pub filename: String,
    /// Type.
    pub content_type: String,
    /// Bytes.
    pub size: u64,
}

/// Where files live.
#[derive(Debug, Clone)]
pub struct Files {
    root: PathBuf,
}

fn io(e: std::io::Error) -> DemandError {
    tracing::error!(error = %e, "file storage");
    DemandError::Unavailable("file storage unavailable".into())
}

impl Files {
    /// Files under `root` (created if missing).
    pub fn new(root: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn path(&self, id: &str) -> Result<PathBuf, DemandError> {
        // Ids are ours (hex); anything else never names a file.
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DemandError::NotFound("file".into()));
        }
        Ok(self.root.join(id))
    }

    /// Writes a new upload's content durably (synced) and describes it.
    pub async fn write(
        &self,
        owner: Option<AccountId>,
        filename: &str,
        declared_type: Option<&str>,
        content: Vec<u8>,
    ) -> Result<Upload, DemandError> {
        let size = content.len() as u64;
        if size == 0 {
            return Err(DemandError::Invalid("the file is empty".into()));
        }
        if size > MAX_UPLOAD_BYTES {
            return Err(DemandError::Invalid(format!(
                "a file has at most {} MiB",
                MAX_UPLOAD_BYTES >> 20
            )));
        }
        let content_type = content_type(filename, declared_type, &content)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = self.path(&id)?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&path)?;
            f.write_all(&content)?;
            f.sync_all()
        })
        .await
        .map_err(|e| DemandError::Unavailable(e.to_string()))?
        .map_err(io)?;
        Ok(Upload {
            id,
            owner,
            filename: clean_name(filename),
            content_type,
            size,
            created_at: Timestamp::now(),
            demand: None,
        })
    }

    /// Opens a stored file.
    pub fn open(&self, id: &str) -> Result<std::fs::File, DemandError> {
        std::fs::File::open(self.path(id)?).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DemandError::NotFound("file".into()),
            _ => io(e),
        })
    }

    /// Deletes a stored file (already gone is fine).
    pub fn remove(&self, id: &str) -> Result<(), DemandError> {
        match std::fs::remove_file(self.path(id)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// A file name safe to show and to put in a zip: no folders, no control characters.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String =
        base.chars().filter(|c| !c.is_control()).take(200).collect::<String>().trim().to_owned();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." { "file".into() } else { cleaned }
}

/// The type of an upload: the declared one (or one guessed from the name), checked against
/// the content when it is a type whose first bytes are known.
fn content_type(
    filename: &str,
    declared: Option<&str>,
    content: &[u8],
) -> Result<String, DemandError> {
    let declared = declared
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "application/octet-stream")
        .or_else(|| by_extension(filename).map(str::to_owned))
        .unwrap_or_else(|| "application/octet-stream".into());
    let sniffed = sniff(content);
    match (sniffable(&declared), sniffed) {
        (true, Some(actual)) if actual != declared && !same_family(&declared, actual) => Err(
            DemandError::Invalid(format!("the file is not a {declared}: it looks like {actual}")),
        ),
        (true, None) => {
            Err(DemandError::Invalid(format!("the file's content is not a {declared}")))
        }
        _ => Ok(declared),
    }
}

fn by_extension(name: &str) -> Option<&'static str> {
    let ext = name.rsplit('.').next()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "odt" => "application/vnd.oasis.opendocument.text",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => return None,
    })
}

const ZIP_BASED: [&str; 4] = [
    "application/zip",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
];

fn sniffable(t: &str) -> bool {
    matches!(t, "application/pdf" | "image/png" | "image/jpeg" | "image/gif" | "image/webp")
        || ZIP_BASED.contains(&t)
}

fn same_family(declared: &str, actual: &str) -> bool {
    actual == "application/zip" && ZIP_BASED.contains(&declared)
}

fn sniff(c: &[u8]) -> Option<&'static str> {
    Some(if c.starts_with(b"%PDF-") {
        "application/pdf"
    } else if c.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if c.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else if c.starts_with(b"GIF87a") || c.starts_with(b"GIF89a") {
        "image/gif"
    } else if c.len() >= 12 && &c[..4] == b"RIFF" && &c[8..12] == b"WEBP" {
        "image/webp"
    } else if c.starts_with(b"PK\x03\x04") {
        "application/zip"
    } else if c.starts_with(b"MZ") || c.starts_with(b"\x7fELF") {
        "application/x-executable"
    } else {
        return None;
    })
}

/// True when `content_type` is one of `accepted` (`image/*` accepts every image); everything
/// when the list is empty.
pub fn type_accepted(content_type: &str, accepted: &[String]) -> bool {
    accepted.is_empty()
        || accepted.iter().any(|a| {
            let a = a.trim().to_ascii_lowercase();
            match a.strip_suffix("/*") {
                Some(family) => content_type.split('/').next() == Some(family),
                None => a == content_type,
            }
        })
}

/// Checks a file against a field's limits: at most `max_bytes`, of one of `accepted` types
/// (any when empty); the refusal as the person sees it.
pub fn check_limits(
    size: u64,
    content_type: &str,
    max_bytes: u64,
    accepted: &[String],
) -> Result<(), String> {
    if size > max_bytes {
        return Err(format!("a file here has at most {} KiB", max_bytes / 1024));
    }
    if !type_accepted(content_type, accepted) {
        return Err(format!(
            "{content_type} files are not accepted here (accepted: {})",
            accepted.join(", ")
        ));
    }
    Ok(())
}

/// The value a file field stores.
pub fn field_value(u: &Upload) -> Value {
    serde_json::json!({
        "upload": u.id, "name": u.filename, "type": u.content_type, "size": u.size
    })
}

/// Every attachment in a demand's data, blocks included, in field order.
pub fn attachments_of(data: &serde_json::Map<String, Value>) -> Vec<Attachment> {
    let mut out = Vec::new();
    collect(data, "", &mut out);
    out
}

fn collect(data: &serde_json::Map<String, Value>, prefix: &str, out: &mut Vec<Attachment>) {
    for (k, v) in data {
        match v {
            Value::Object(o) if o.contains_key("upload") => out.push(Attachment {
                field: format!("{prefix}{k}"),
                upload: o["upload"].as_str().unwrap_or_default().to_owned(),
                filename: o.get("name").and_then(Value::as_str).unwrap_or("file").to_owned(),
                content_type: o.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(),
                size: o.get("size").and_then(Value::as_u64).unwrap_or_default(),
            }),
            Value::Array(rows) => {
                for (i, row) in rows.iter().enumerate() {
                    if let Some(row) = row.as_object() {
                        collect(row, &format!("{prefix}{k}.{i}."), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Writes `attachments` as one zip into `out` (a stream: nothing is seeked). Each entry is
/// named `<field>/<file name>` so that two files of the same name stay apart.
pub fn write_zip<W: Write>(
    files: &Files,
    attachments: &[Attachment],
    out: W,
) -> Result<(), DemandError> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    let failed = |e: zip::result::ZipError| DemandError::Unavailable(format!("zip: {e}"));
    for a in attachments {
        let mut file = files.open(&a.upload)?;
        zip.start_file(format!("{}/{}", a.field, clean_name(&a.filename)), options)
            .map_err(failed)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            zip.write_all(&buf[..n]).map_err(io)?;
        }
    }
    zip.finish().map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_are_checked_against_content() {
        let pdf = b"%PDF-1.7 ...".to_vec();
        assert_eq!(
            content_type("a.pdf", Some("application/pdf"), &pdf).unwrap(),
            "application/pdf"
        );
        assert_eq!(content_type("a.pdf", None, &pdf).unwrap(), "application/pdf");
        let exe = b"MZ\x90\x00rest".to_vec();
        let e = content_type("invoice.pdf", Some("application/pdf"), &exe).unwrap_err();
        assert!(e.to_string().contains("x-executable"), "{e}");
        assert!(content_type("x.png", Some("image/png"), b"hello").is_err());
        let docx = b"PK\x03\x04...".to_vec();
        assert!(content_type("a.docx", None, &docx).is_ok(), "office files are zips");
        assert_eq!(content_type("notes.txt", None, b"hello").unwrap(), "text/plain");
    }

    #[test]
    fn accepted_types_and_names() {
        assert!(type_accepted("image/png", &["image/*".into()]));
        assert!(!type_accepted("application/pdf", &["image/*".into()]));
        assert!(type_accepted("application/pdf", &[]));
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\x\\photo.jpg"), "photo.jpg");
        assert_eq!(clean_name(".."), "file");
    }

    #[test]
    fn attachments_are_found_in_blocks_and_zipped() {
        let dir = std::env::temp_dir().join(format!("guichet-files-{}", uuid::Uuid::new_v4()));
        let files = Files::new(dir.clone()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let a = rt.block_on(files.write(None, "plan.pdf", None, b"%PDF-1 plan".to_vec())).unwrap();
        let b = rt.block_on(files.write(None, "plan.pdf", None, b"%PDF-1 other".to_vec())).unwrap();
        let data = serde_json::json!({
            "plan": field_value(&a),
            "rooms": [{ "photo": field_value(&b) }],
            "name": "x"
        });
        let found = attachments_of(data.as_object().unwrap());
        let fields: Vec<&str> = found.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["plan", "rooms.0.photo"]);
        let mut zipped = Vec::new();
        write_zip(&files, &found, &mut zipped).unwrap();
        assert!(zipped.starts_with(b"PK\x03\x04"));
        assert!(
            zipped
                .windows(14)
                .any(|w| w == b"plan/plan.pdf\x00" || w.starts_with(b"plan/plan.pdf"))
        );
        assert!(zipped.windows(11).any(|w| w == b"%PDF-1 plan"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
