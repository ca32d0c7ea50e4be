//! Intrusive doubly linked lists over slot indices, the building block of the
//! recency-ordered policies. Several lists may share one `Links` table as long
//! as each slot is in at most one of them.

use super::Slot;

/// "No slot" marker.
const NIL: Slot = Slot::MAX;

#[derive(Clone, Copy)]
struct Node {
    prev: Slot,
    next: Slot,
}

/// Per-slot link storage shared by the lists of one policy.
#[derive(Default)]
pub struct Links {
    nodes: Vec<Node>,
}

impl Links {
    fn node(&mut self, slot: Slot) -> &mut Node {
        let i = slot as usize;
        if i >= self.nodes.len() {
            self.nodes.resize(
                i + 1,
                Node {
                    prev: NIL,
                    next: NIL,
                },
            );
        }
        &mut self.nodes[i]
    }

    /// Forgets every link.
    pub fn clear(&mut self) {
        self.nodes.clear();
    }
}

/// A list ordered from most recent (front) to least recent (back).
pub struct List {
    head: Slot,
    tail: Slot,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
        }
    }
}

impl List {
    /// The least recent slot.
    pub fn back(&self) -> Option<Slot> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// Puts `slot` (not in any list) at the front.
    pub fn push_front(&mut self, links: &mut Links, slot: Slot) {
        let old_head = self.head;
        *links.node(slot) = Node {
            prev: NIL,
            next: old_head,
        };
        if old_head != NIL {
            links.node(old_head).prev = slot;
        } else {
            self.tail = slot;
        }
        self.head = slot;
    }

    /// Takes `slot` (which must be in this list) out of it.
    pub fn remove(&mut self, links: &mut Links, slot: Slot) {
        let Node { prev, next } = *links.node(slot);
        if prev != NIL {
            links.node(prev).next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            links.node(next).prev = prev;
        } else {
            self.tail = prev;
        }
    }

    /// Moves `slot` (which must be in this list) to the front.
    pub fn move_to_front(&mut self, links: &mut Links, slot: Slot) {
        if self.head != slot {
            self.remove(links, slot);
            self.push_front(links, slot);
        }
    }

    /// Empties the list (the caller clears the shared links).
    pub fn clear(&mut self) {
        *self = List::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(list: &List, links: &Links) -> Vec<Slot> {
        let mut out = vec![];
        let mut s = list.head;
        while s != NIL {
            out.push(s);
            s = links.nodes[s as usize].next;
        }
        out
    }

    #[test]
    fn keeps_recency_order() {
        let mut links = Links::default();
        let mut list = List::default();
        for s in [3, 1, 7] {
            list.push_front(&mut links, s);
        }
        assert_eq!(order(&list, &links), vec![7, 1, 3]);
        list.move_to_front(&mut links, 3);
        assert_eq!(order(&list, &links), vec![3, 7, 1]);
        list.remove(&mut links, 7);
        assert_eq!(order(&list, &links), vec![3, 1]);
        assert_eq!(list.back(), Some(1));
        list.remove(&mut links, 1);
        list.remove(&mut links, 3);
        assert_eq!(list.back(), None);
    }
}
