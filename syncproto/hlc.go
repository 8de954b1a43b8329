package syncproto

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// HLC is a hybrid logical clock stamp: wall milliseconds, a logical counter
// for events within the same millisecond, and the replica that made it.
//
// Stamps order the writes of one author's devices and pick a deterministic
// winner between concurrent writes (see Wins). A replica advances its clock
// with Next for each local write and with Observe for every stamp it
// receives, so a phone whose clock is years behind still stamps later than
// anything it has pulled from the server: after one sync its stamps are
// ordered sensibly even with a wrong clock.
//
// The text form is "WALLMS-LOGICAL-REPLICA", with the wall time as 13
// decimal digits and the logical counter as 4 (more if needed), e.g.
// "1730468100000-0002-0192b000-0000-7000-8000-000000000211".
type HLC struct {
	Wall    int64     // Unix milliseconds
	Logical uint32    // orders stamps with the same Wall
	Replica ReplicaID // tie-breaker and author device
}

// Compare orders stamps by Wall, then Logical, then Replica bytes. It is a
// total order: two stamps compare 0 only when identical.
func (h HLC) Compare(o HLC) int {
	switch {
	case h.Wall < o.Wall:
		return -1
	case h.Wall > o.Wall:
		return 1
	case h.Logical < o.Logical:
		return -1
	case h.Logical > o.Logical:
		return 1
	}
	return cmpReplica(h.Replica, o.Replica)
}

// IsZero reports whether h is the zero stamp.
func (h HLC) IsZero() bool { return h == HLC{} }

// Next returns the stamp for a new local write by replica at time now,
// after h, the replica's latest stamp (sent or observed).
func (h HLC) Next(replica ReplicaID, now time.Time) HLC {
	ms := now.UnixMilli()
	switch {
	case ms > h.Wall:
		return HLC{Wall: ms, Replica: replica}
	case h.Logical == math.MaxUint32:
		// Never wrap the logical counter: that would stamp earlier than
		// h. Borrow the next millisecond instead.
		return HLC{Wall: h.Wall + 1, Replica: replica}
	}
	return HLC{Wall: h.Wall, Logical: h.Logical + 1, Replica: replica}
}

// Observe returns the later of h and a received stamp, keeping h's
// replica: the clock a replica keeps after receiving o.
func (h HLC) Observe(o HLC) HLC {
	if o.Wall > h.Wall || (o.Wall == h.Wall && o.Logical > h.Logical) {
		return HLC{Wall: o.Wall, Logical: o.Logical, Replica: h.Replica}
	}
	return h
}

// Time returns the wall part as a time.
func (h HLC) Time() time.Time { return time.UnixMilli(h.Wall).UTC() }

// String returns the text form.
func (h HLC) String() string {
	return fmt.Sprintf("%013d-%04d-%s", h.Wall, h.Logical, h.Replica)
}

// ParseHLC parses the text form written by String. Only that canonical
// spelling is accepted ("+5" or a short logical counter are not), so one
// stamp has one text and records compare by their bytes.
func ParseHLC(s string) (HLC, error) {
	wall, rest, ok := strings.Cut(s, "-")
	if !ok {
		return HLC{}, fmt.Errorf("hlc %q: want WALLMS-LOGICAL-REPLICA", s)
	}
	logical, rep, ok := strings.Cut(rest, "-")
	if !ok {
		return HLC{}, fmt.Errorf("hlc %q: want WALLMS-LOGICAL-REPLICA", s)
	}
	w, err := strconv.ParseInt(wall, 10, 64)
	if err != nil || w < 0 || w > MaxCounterValue {
		return HLC{}, fmt.Errorf("hlc %q: bad wall time", s)
	}
	l, err := strconv.ParseUint(logical, 10, 32)
	if err != nil {
		return HLC{}, fmt.Errorf("hlc %q: bad logical counter", s)
	}
	id, err := parseUUID(rep)
	if err != nil {
		return HLC{}, fmt.Errorf("hlc %q: bad replica", s)
	}
	h := HLC{Wall: w, Logical: uint32(l), Replica: id}
	if h.String() != s {
		return HLC{}, fmt.Errorf("hlc %q: not in canonical form (want %s)", s, h)
	}
	return h, nil
}

// MarshalText implements encoding.TextMarshaler.
func (h HLC) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HLC) UnmarshalText(b []byte) error {
	v, err := ParseHLC(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}
