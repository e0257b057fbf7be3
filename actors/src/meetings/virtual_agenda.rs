//! Virtual agendas: the union of several meetings agendas that share meeting types (same slug
//! and duration), as Chrono has them. A slot of a virtual agenda is free when a member has it
//! free and no exclusion period of the virtual agenda covers it; a booking goes to one member.
//!
//! Plain data and functions; the registry gathers the members' slots from their actors.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::{DateTime, Time};
use jiff::tz::TimeZone;

use super::model::{MeetingType, MeetingsError, PeriodRule, Slot};
use crate::ids::{AgendaId, DeskId, MeetingTypeId, PeriodId};

/// A period during which a virtual agenda offers no slot, whatever its members have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// Identifier.
    pub id: PeriodId,
    /// Which days.
    pub rule: PeriodRule,
    /// Start, local.
    pub start: Time,
    /// End, local.
    pub end: Time,
}

impl Exclusion {
    /// True when `[from, to)` meets this exclusion on the local day of `from`.
    fn covers(&self, tz: &TimeZone, from: Timestamp, to: Timestamp) -> bool {
        let day = from.to_zoned(tz.clone()).date();
        if !self.rule.applies_to(day) {
            return false;
        }
        let at =
            |t: Time| tz.to_ambiguous_timestamp(DateTime::from_parts(day, t)).compatible().ok();
        match (at(self.start), at(self.end)) {
            (Some(s), Some(e)) => s < to && from < e,
            _ => false,
        }
    }
}

/// Validates a new exclusion period.
pub fn new_exclusion(
    rule: PeriodRule,
    start: Time,
    end: Time,
    id: PeriodId,
) -> Result<Exclusion, MeetingsError> {
    if end <= start {
        return Err(MeetingsError::Invalid("an exclusion period must end after it starts".into()));
    }
    if let PeriodRule::MonthlyNth { nths, .. } = &rule
        && (nths.is_empty() || nths.iter().any(|n| !(*n == -1 || (1..=5).contains(n))))
    {
        return Err(MeetingsError::Invalid(
            "weeksOfMonth lists occurrences 1 to 5, or -1 for the last".into(),
        ));
    }
    Ok(Exclusion { id, rule, start, end })
}

/// A meeting type offered by a virtual agenda: one type of each member with this slug and
/// duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedType {
    /// The shared slug.
    pub slug: String,
    /// Label (the first member's).
    pub label: String,
    /// Duration in minutes.
    pub duration_minutes: u32,
    /// The matching type of each member, in member order.
    pub members: Vec<(AgendaId, MeetingTypeId)>,
}

impl SharedType {
    /// The id shown for the shared type: the first member's.
    pub fn id(&self) -> Option<MeetingTypeId> {
        self.members.first().map(|(_, t)| *t)
    }
}

/// The meeting types every member has (same slug and duration), in the first member's order.
pub fn shared_types(members: &[(AgendaId, Vec<MeetingType>)]) -> Vec<SharedType> {
    let Some((_, first)) = members.first() else { return Vec::new() };
    first
        .iter()
        .filter_map(|t| {
            let mut found = Vec::with_capacity(members.len());
            for (agenda, types) in members {
                let m = types
                    .iter()
                    .find(|o| o.slug == t.slug && o.duration_minutes == t.duration_minutes)?;
                found.push((*agenda, m.id));
            }
            Some(SharedType {
                slug: t.slug.clone(),
                label: t.label.clone(),
                duration_minutes: t.duration_minutes,
                members: found,
            })
        })
        .collect()
}

/// Finds the shared type that `id` (the id of any member's type) belongs to.
pub fn shared_type_of(types: &[SharedType], id: MeetingTypeId) -> Option<&SharedType> {
    types.iter().find(|s| s.members.iter().any(|(_, t)| *t == id))
}

/// A slot of a virtual agenda, with the members that have it free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualSlot {
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
    /// Free desks per member having the slot free, in member order.
    pub free: Vec<(AgendaId, Vec<DeskId>)>,
}

impl VirtualSlot {
    /// Free desks in all.
    pub fn free_desks(&self) -> usize {
        self.free.iter().map(|(_, d)| d.len()).sum()
    }

    /// The members to try for a booking: the one with the most free desks first (spreading
    /// the load), then in member order.
    pub fn booking_order(&self) -> Vec<AgendaId> {
        let mut order: Vec<(usize, usize, AgendaId)> =
            self.free.iter().enumerate().map(|(i, (a, d))| (usize::MAX - d.len(), i, *a)).collect();
        order.sort();
        order.into_iter().map(|(_, _, a)| a).collect()
    }

    /// As a plain slot: every free desk of every member.
    pub fn to_slot(&self) -> Slot {
        Slot {
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            free_desks: self.free.iter().flat_map(|(_, d)| d.iter().copied()).collect(),
        }
    }
}

/// The free desks of each member having a slot free.
type MemberDesks = Vec<(AgendaId, Vec<DeskId>)>;

/// Merges the members' free slots (each list by start) into the virtual agenda's, dropping
/// those an exclusion covers.
pub fn merge_slots(
    members: Vec<(AgendaId, Vec<Slot>)>,
    exclusions: &[Exclusion],
    tz: &TimeZone,
) -> Vec<VirtualSlot> {
    let mut merged: BTreeMap<(Timestamp, Timestamp), MemberDesks> = BTreeMap::new();
    for (agenda, slots) in members {
        for s in slots {
            merged.entry((s.starts_at, s.ends_at)).or_default().push((agenda, s.free_desks));
        }
    }
    merged
        .into_iter()
        .filter(|((from, to), _)| !exclusions.iter().any(|e| e.covers(tz, *from, *to)))
        .map(|((starts_at, ends_at), free)| VirtualSlot { starts_at, ends_at, free })
        .collect()
}

#[cfg(test)]
mod tests {
    use jiff::civil::{Weekday, time};

    use super::*;
    use crate::time::paris;

    fn slot(at: &str, desks: usize) -> Slot {
        let starts_at: Timestamp = at.parse().unwrap();
        Slot {
            starts_at,
            ends_at: starts_at + jiff::SignedDuration::from_mins(30),
            free_desks: (0..desks).map(|_| DeskId::new()).collect(),
        }
    }

    fn mt(slug: &str, minutes: u32) -> MeetingType {
        MeetingType {
            id: MeetingTypeId::new(),
            slug: slug.into(),
            label: slug.into(),
            duration_minutes: minutes,
        }
    }

    #[test]
    fn shared_types_need_the_same_slug_and_duration_in_every_member() {
        let (a, b) = (AgendaId::new(), AgendaId::new());
        let a_types = vec![mt("passeport", 30), mt("cni", 15), mt("mariage", 60)];
        let b_types = vec![mt("cni", 15), mt("passeport", 30), mt("mariage", 45)];
        let shared = shared_types(&[(a, a_types.clone()), (b, b_types.clone())]);
        let slugs: Vec<&str> = shared.iter().map(|s| s.slug.as_str()).collect();
        assert_eq!(slugs, ["passeport", "cni"], "mariage differs in duration");
        assert_eq!(shared[0].members, vec![(a, a_types[0].id), (b, b_types[1].id)]);
        assert_eq!(shared_type_of(&shared, b_types[0].id).map(|s| s.slug.as_str()), Some("cni"));
    }

    #[test]
    fn slots_are_the_union_of_members_minus_exclusions() {
        let (a, b) = (AgendaId::new(), AgendaId::new());
        // 2026-06-03 is a Wednesday.
        let members = vec![
            (a, vec![slot("2026-06-03T09:00:00+02:00", 1), slot("2026-06-03T14:00:00+02:00", 2)]),
            (b, vec![slot("2026-06-03T09:00:00+02:00", 3), slot("2026-06-03T09:30:00+02:00", 1)]),
        ];
        let no_wednesday_afternoons = new_exclusion(
            PeriodRule::Weekly(Weekday::Wednesday),
            time(12, 0, 0, 0),
            time(18, 0, 0, 0),
            PeriodId::new(),
        )
        .unwrap();
        let merged = merge_slots(members, &[no_wednesday_afternoons], &paris());
        assert_eq!(merged.len(), 2, "{merged:?}");
        let counts =
            |v: &VirtualSlot| v.free.iter().map(|(a, d)| (*a, d.len())).collect::<Vec<_>>();
        assert_eq!(counts(&merged[0]), vec![(a, 1), (b, 3)]);
        assert_eq!(merged[0].free_desks(), 4);
        assert_eq!(merged[0].to_slot().free_desks.len(), 4);
        assert_eq!(merged[0].booking_order(), vec![b, a], "the member with more free desks first");
        assert_eq!(counts(&merged[1]), vec![(b, 1)]);
        assert!(
            new_exclusion(
                PeriodRule::Weekly(Weekday::Monday),
                time(12, 0, 0, 0),
                time(9, 0, 0, 0),
                PeriodId::new()
            )
            .is_err()
        );
    }
}
