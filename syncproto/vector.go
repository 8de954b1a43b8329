package syncproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// MaxCounterValue bounds every counter so that it stays exact as a
// JavaScript number on the phone (2^53−1) and fits a BSON int64.
const MaxCounterValue = 1<<53 - 1

// ReplicaID identifies one replica: a phone installation, a browser, or a
// server process's office identity. It is a UUID the replica makes itself.
type ReplicaID = uuid.UUID

// Counter is one replica's entry in a Vector.
type Counter struct {
	Replica ReplicaID
	Value   uint64
}

// Vector is a version vector: for each replica, how many of its writes
// (clock-based, see Update) a version has seen.
//
// Counters are sorted by Replica, hold no duplicates and no zero Values; a
// missing counter means zero. Vectors are values: no method modifies its
// receiver or its arguments, and results never share memory with them.
// The zero Vector is empty and ready to use.
//
// On the wire a Vector is a JSON object from replica UUID to counter,
// {"0192b000-…": 1730468100}, which JavaScript and Dart read natively;
// encoding/json writes the keys sorted, so the encoding is canonical.
type Vector struct {
	Counters []Counter
}

// Ordering is the result of comparing two vectors.
type Ordering int

// The four orderings of version vectors. There is no tie-break here:
// Concurrent is concurrent, and the deterministic winner between concurrent
// versions is chosen by Wins, where the rule is explicit.
const (
	Equal Ordering = iota
	Greater
	Lesser
	Concurrent
)

func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Greater:
		return "greater"
	case Lesser:
		return "lesser"
	case Concurrent:
		return "concurrent"
	}
	return "Ordering(" + strconv.Itoa(int(o)) + ")"
}

// MarshalText lets an Ordering appear as a word in JSON test vectors.
func (o Ordering) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText parses the words written by MarshalText.
func (o *Ordering) UnmarshalText(b []byte) error {
	switch string(b) {
	case "equal":
		*o = Equal
	case "greater":
		*o = Greater
	case "lesser":
		*o = Lesser
	case "concurrent":
		*o = Concurrent
	default:
		return fmt.Errorf("unknown ordering %q", b)
	}
	return nil
}

func cmpReplica(a, b ReplicaID) int { return bytes.Compare(a[:], b[:]) }

// Counter returns the value of the replica's counter, 0 if absent.
func (v Vector) Counter(id ReplicaID) uint64 {
	i := sort.Search(len(v.Counters), func(i int) bool { return cmpReplica(v.Counters[i].Replica, id) >= 0 })
	if i < len(v.Counters) && v.Counters[i].Replica == id {
		return v.Counters[i].Value
	}
	return 0
}

// IsEmpty reports whether the vector has no counters.
func (v Vector) IsEmpty() bool { return len(v.Counters) == 0 }

// IsZero is IsEmpty under the name encoding/json's omitzero looks for, so
// an empty vector is left out wherever it is optional.
func (v Vector) IsZero() bool { return len(v.Counters) == 0 }

// Copy returns a vector that shares no memory with v.
func (v Vector) Copy() Vector {
	if len(v.Counters) == 0 {
		return Vector{}
	}
	return Vector{Counters: append([]Counter(nil), v.Counters...)}
}

// Compare returns how v relates to b: Equal, Greater (v has seen
// everything b has and more), Lesser, or Concurrent. It is one pass over
// both sorted lists and stops at the first sign of concurrency.
func (v Vector) Compare(b Vector) Ordering {
	var vAhead, bAhead bool
	i, j := 0, 0
	for i < len(v.Counters) || j < len(b.Counters) {
		var c int
		switch {
		case i == len(v.Counters):
			c = 1
		case j == len(b.Counters):
			c = -1
		default:
			c = cmpReplica(v.Counters[i].Replica, b.Counters[j].Replica)
		}
		switch {
		case c < 0:
			vAhead = vAhead || v.Counters[i].Value > 0
			i++
		case c > 0:
			bAhead = bAhead || b.Counters[j].Value > 0
			j++
		default:
			vAhead = vAhead || v.Counters[i].Value > b.Counters[j].Value
			bAhead = bAhead || v.Counters[i].Value < b.Counters[j].Value
			i++
			j++
		}
		if vAhead && bAhead {
			return Concurrent
		}
	}
	switch {
	case vAhead:
		return Greater
	case bAhead:
		return Lesser
	}
	return Equal
}

// Equal reports whether v and b are the same version.
func (v Vector) Equal(b Vector) bool { return v.Compare(b) == Equal }

// LesserEqual reports whether b has seen everything v has.
func (v Vector) LesserEqual(b Vector) bool {
	o := v.Compare(b)
	return o == Lesser || o == Equal
}

// GreaterEqual reports whether v has seen everything b has.
func (v Vector) GreaterEqual(b Vector) bool {
	o := v.Compare(b)
	return o == Greater || o == Equal
}

// Concurrent reports whether neither of v and b has seen the other.
func (v Vector) Concurrent(b Vector) bool { return v.Compare(b) == Concurrent }

// Meet returns the element-wise minimum of v and b: the largest version
// that both have seen. (A phone folding two changes of one record into
// one sends their meet as the base: what it had certainly seen before the
// earlier of them.) The result is freshly allocated.
func (v Vector) Meet(b Vector) Vector {
	var out Vector
	for _, c := range v.Counters {
		if m := min(c.Value, b.Counter(c.Replica)); m > 0 {
			out.Counters = append(out.Counters, Counter{Replica: c.Replica, Value: m})
		}
	}
	return out
}

// Merge returns the element-wise maximum of v and b: the smallest version
// that has seen both. The result is freshly allocated.
func (v Vector) Merge(b Vector) Vector {
	out := make([]Counter, 0, max(len(v.Counters), len(b.Counters)))
	i, j := 0, 0
	for i < len(v.Counters) || j < len(b.Counters) {
		var c int
		switch {
		case i == len(v.Counters):
			c = 1
		case j == len(b.Counters):
			c = -1
		default:
			c = cmpReplica(v.Counters[i].Replica, b.Counters[j].Replica)
		}
		switch {
		case c < 0:
			out = append(out, v.Counters[i])
			i++
		case c > 0:
			out = append(out, b.Counters[j])
			j++
		default:
			out = append(out, Counter{v.Counters[i].Replica, max(v.Counters[i].Value, b.Counters[j].Value)})
			i++
			j++
		}
	}
	if len(out) == 0 {
		return Vector{}
	}
	return Vector{Counters: out}
}

// Update returns a copy of v with the replica's counter advanced for a new
// write at time now: the new value is max(old+1, now in Unix seconds).
//
// The clock-based value is what makes a phone restored from an old backup
// safe (syncthing does the same, fixing its issue #3876): the restored
// phone has forgotten writes it already sent, so a plain old+1 would give
// its next write a vector that compares Lesser than, or Equal to, one the
// server already holds, and that write would be dropped as old. Seconds
// since 1970 are larger than any counter the forgotten writes reached,
// unless the phone made more than one write per second for a long time,
// which Update also survives because old+1 still increments.
//
// Update panics if the counter would exceed MaxCounterValue (also for a
// new counter when now is past 2^53 seconds); with clock values that
// cannot happen before the year 285 million.
func (v Vector) Update(id ReplicaID, now time.Time) Vector {
	secs := uint64(max(now.Unix(), 0))
	next := func(old uint64) uint64 {
		nv := max(old+1, secs)
		if old >= MaxCounterValue || nv > MaxCounterValue {
			panic("syncproto: vector counter overflow")
		}
		return nv
	}
	out := make([]Counter, 0, len(v.Counters)+1)
	done := false
	for _, c := range v.Counters {
		if !done {
			switch cmpReplica(c.Replica, id) {
			case 0:
				out = append(out, Counter{id, next(c.Value)})
				done = true
				continue
			case 1:
				out = append(out, Counter{id, next(0)})
				done = true
			}
		}
		out = append(out, c)
	}
	if !done {
		out = append(out, Counter{id, next(0)})
	}
	return Vector{Counters: out}
}

// Validate checks the canonical form: counters sorted by replica, no
// duplicates, no zero values, no value above MaxCounterValue. Call it on
// every vector read from the wire or from storage.
func (v Vector) Validate() error {
	for i, c := range v.Counters {
		if c.Value == 0 {
			return fmt.Errorf("vector: zero counter for replica %s", c.Replica)
		}
		if c.Value > MaxCounterValue {
			return fmt.Errorf("vector: counter for replica %s exceeds 2^53-1", c.Replica)
		}
		if i > 0 && cmpReplica(v.Counters[i-1].Replica, c.Replica) >= 0 {
			return fmt.Errorf("vector: counters not sorted or duplicated at %s", c.Replica)
		}
	}
	return nil
}

// String formats the vector for logs: {id8:value,…}.
func (v Vector) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, c := range v.Counters {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s:%d", c.Replica.String()[:8], c.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// LogValue implements slog.LogValuer.
func (v Vector) LogValue() slog.Value { return slog.StringValue(v.String()) }

// MarshalJSON writes the vector as an object from replica to counter.
func (v Vector) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range v.Counters {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(c.Replica.String())
		b.WriteString(`":`)
		b.WriteString(strconv.FormatUint(c.Value, 10))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads the object written by MarshalJSON and checks it with
// Validate. Counters that are not whole numbers in [1, 2^53−1] and keys
// that are not UUIDs are errors.
func (v *Vector) UnmarshalJSON(data []byte) error {
	// json.RawMessage, not json.Number: a Number also accepts a quoted
	// "1", which no other implementation would write.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("vector: %w", err)
	}
	out := make([]Counter, 0, len(m))
	for k, n := range m {
		id, err := parseUUID(k)
		if err != nil {
			return fmt.Errorf("vector: replica %q is not a UUID", k)
		}
		val, err := strconv.ParseUint(string(n), 10, 64)
		if err != nil {
			return fmt.Errorf("vector: counter %s of replica %s is not a whole number", n, k)
		}
		out = append(out, Counter{id, val})
	}
	sort.Slice(out, func(i, j int) bool { return cmpReplica(out[i].Replica, out[j].Replica) < 0 })
	nv := Vector{Counters: out}
	if len(out) == 0 {
		nv = Vector{}
	}
	if err := nv.Validate(); err != nil {
		return err
	}
	*v = nv
	return nil
}
