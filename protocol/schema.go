package protocol

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// This file is the request-body walker: a description of each supported
// request's wire layout (one file per API key holds it) and an interpreter
// that checks a body against it without allocating, before kmsg decodes it.
//
// Why it exists. kmsg's generated decoders are correct for honest input but
// were written for a client reading a trusted broker:
//
//  1. An array count is checked only against the bytes remaining (one byte
//     per element), then count x sizeof(element) is allocated up front. A
//     ProduceRequestTopic is 64 bytes of Go struct but may be 3 bytes on the
//     wire, so a 100 MiB Produce frame could make kmsg allocate gigabytes.
//  2. A tagged-field section's count is a uvarint up to 2^32-1 and the loop
//     that reads it does not stop when the input runs out: an 8-byte
//     Metadata body claiming 4 billion tags keeps a core busy for about two
//     minutes (measured with kmsg v1.15.0) before returning an error.
//  3. Negative lengths other than the null marker, and trailing bytes after
//     the body, are silently accepted.
//
// The walker checks every count against the bytes remaining using the
// element's real minimum encoded size for the version, bounds every tagged
// field section by its bytes, rejects what Kafka rejects (-1 for a
// non-nullable array, lengths below -1, trailing bytes), and estimates how
// many heap bytes kmsg's ReadFrom will then allocate. Anything the walker
// accepts kmsg decodes without error (the fuzz tests check this), in time
// and memory proportional to the body.

// kind is the wire type of a schema field.
type kind uint8

const (
	kBool           kind = iota + 1 // 1 byte
	kInt8                           // 1 byte
	kInt16                          // 2 bytes
	kInt32                          // 4 bytes
	kInt64                          // 8 bytes
	kUUID                           // 16 bytes
	kString                         // int16 length (compact: uvarint length+1), never null
	kNullableString                 // as kString; -1 (compact: 0) is null
	kBytes                          // int32 length (compact: uvarint length+1), never null
	kNullableBytes                  // as kBytes; -1 (compact: 0) is null
	kStructArray                    // int32 count (compact: uvarint count+1) of elem
	kInt8Array                      // count of int8
	kInt32Array                     // count of int32
	kStringArray                    // count of kString
	kStruct                         // elem inline (only as a known tagged field's content)
)

const (
	noMax         = math.MaxInt16 // field present in every later version
	noNull        = math.MaxInt16 // array never nullable
	neverFlexible = math.MaxInt16 // apiSchema.flexibleFrom of an API with no flexible version
)

// field is one field of a request struct, present in versions
// [minV, maxV].
type field struct {
	name      string
	kind      kind
	minV      int16
	maxV      int16
	nullSince int16       // arrays: first version where -1 (null) is allowed
	ptr       bool        // kString: kmsg stores it behind a *string
	elem      *structType // kStructArray, kStruct
}

// structType is a request struct: its fields in wire order, then (in
// flexible versions) a tagged-field section, in which the tags listed in
// tags are decoded by kmsg and the rest are kept as unknown tags.
type structType struct {
	goSize int64 // size of the kmsg Go struct for one array element
	fields []field
	tags   []knownTag
}

// knownTag is a tagged field kmsg decodes rather than keeps as raw bytes.
type knownTag struct {
	tag uint32
	f   field
}

// apiSchema is the request layout of one API key over every version kmsg
// v1.15.0 knows.
type apiSchema struct {
	key          int16
	flexibleFrom int16 // first flexible (KIP-482) version
	maxVersion   int16 // highest version described (kmsg's MaxVersion)
	body         *structType
}

func (a *apiSchema) flexible(v int16) bool { return v >= a.flexibleFrom }

// Schema constructors. They keep the per-API files close to Kafka's JSON
// message definitions.

func fld(name string, k kind) field {
	return field{name: name, kind: k, maxV: noMax, nullSince: noNull}
}

func boolF(name string) field       { return fld(name, kBool) }
func int8F(name string) field       { return fld(name, kInt8) }
func int16F(name string) field      { return fld(name, kInt16) }
func int32F(name string) field      { return fld(name, kInt32) }
func int64F(name string) field      { return fld(name, kInt64) }
func uuidF(name string) field       { return fld(name, kUUID) }
func stringF(name string) field     { return fld(name, kString) }
func nullStringF(name string) field { return fld(name, kNullableString) }
func bytesF(name string) field      { return fld(name, kBytes) }
func nullBytesF(name string) field  { return fld(name, kNullableBytes) }
func int8sF(name string) field      { return fld(name, kInt8Array) }
func int32sF(name string) field     { return fld(name, kInt32Array) }
func stringsF(name string) field    { return fld(name, kStringArray) }
func structF(name string, t *structType) field {
	f := fld(name, kStruct)
	f.elem = t
	return f
}

func arrayF(name string, elem *structType) field {
	f := fld(name, kStructArray)
	f.elem = elem
	return f
}

// since limits the field to versions >= v.
func (f field) since(v int16) field { f.minV = v; return f }

// until limits the field to versions <= v.
func (f field) until(v int16) field { f.maxV = v; return f }

// nullableSince allows a null array from version v.
func (f field) nullableSince(v int16) field { f.nullSince = v; return f }

// viaPtr marks a non-nullable string that kmsg stores as a *string.
func (f field) viaPtr() field { f.ptr = true; return f }

// structOf describes a struct whose array elements decode into kmsg's T.
func structOf[T any](fields ...field) *structType {
	var t T
	return &structType{goSize: int64(unsafe.Sizeof(t)), fields: fields}
}

func (t *structType) withTags(tags ...knownTag) *structType {
	t.tags = tags
	return t
}

// walker checks a request body against a schema. It never allocates on the
// success path.
type walker struct {
	src      []byte // the whole body
	pos      int    // bytes consumed
	version  int16
	flexible bool
	alloc    int64 // estimated heap bytes kmsg's ReadFrom will allocate
}

func (w *walker) remaining() int { return len(w.src) - w.pos }

// errf returns an ErrMalformedRequest error naming the field and offset.
func (w *walker) errf(name, format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d: %s", ErrMalformedRequest, name, w.pos, fmt.Sprintf(format, args...))
}

func (w *walker) skip(name string, n int) error {
	if n > w.remaining() {
		return w.errf(name, "need %d bytes, %d remain", n, w.remaining())
	}
	w.pos += n
	return nil
}

func (w *walker) int16(name string) (int16, error) {
	if w.remaining() < 2 {
		return 0, w.errf(name, "need 2 bytes, %d remain", w.remaining())
	}
	v := int16(binary.BigEndian.Uint16(w.src[w.pos:]))
	w.pos += 2
	return v, nil
}

func (w *walker) int32(name string) (int32, error) {
	if w.remaining() < 4 {
		return 0, w.errf(name, "need 4 bytes, %d remain", w.remaining())
	}
	v := int32(binary.BigEndian.Uint32(w.src[w.pos:]))
	w.pos += 4
	return v, nil
}

// uvarint reads an unsigned varint exactly as kmsg does: at most 5 bytes,
// the fifth at most 0x0f, non-minimal encodings allowed.
func (w *walker) uvarint(name string) (uint32, error) {
	v, n := uvarint(w.src[w.pos:])
	if n <= 0 {
		return 0, w.errf(name, "bad or truncated uvarint")
	}
	w.pos += n
	return v, nil
}

func uvarint(b []byte) (uint32, int) {
	var x uint32
	for i := 0; i < 5; i++ {
		if i >= len(b) {
			return 0, 0
		}
		c := b[i]
		if i == 4 {
			if c > 0x0f {
				return 0, -1
			}
			return x | uint32(c)<<28, 5
		}
		x |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return x, i + 1
		}
	}
	return 0, -1 // unreachable
}

// length reads a string or bytes length: an int16 (strings) or int32
// (bytes) in classic versions, a uvarint of length+1 in flexible ones. It
// returns -1 for null, which only nullable fields may use.
func (w *walker) length(name string, bytes32, nullable bool) (int, error) {
	var n int64
	if w.flexible {
		u, err := w.uvarint(name)
		if err != nil {
			return 0, err
		}
		n = int64(u) - 1
	} else if bytes32 {
		v, err := w.int32(name)
		if err != nil {
			return 0, err
		}
		n = int64(v)
	} else {
		v, err := w.int16(name)
		if err != nil {
			return 0, err
		}
		n = int64(v)
	}
	switch {
	case n == -1 && nullable:
		return -1, nil
	case n < 0:
		return 0, w.errf(name, "invalid length %d", n)
	case n > int64(w.remaining()):
		return 0, w.errf(name, "length %d exceeds the %d bytes remaining", n, w.remaining())
	}
	return int(n), nil
}

// count reads an array count and checks that count elements of at least
// minSize bytes each fit in what remains. It returns -1 for null.
func (w *walker) count(name string, nullable bool, minSize int) (int, error) {
	var n int64
	if w.flexible {
		u, err := w.uvarint(name)
		if err != nil {
			return 0, err
		}
		n = int64(u) - 1
	} else {
		v, err := w.int32(name)
		if err != nil {
			return 0, err
		}
		n = int64(v)
	}
	switch {
	case n == -1 && nullable:
		return -1, nil
	case n < 0:
		return 0, w.errf(name, "invalid array count %d", n)
	case n*int64(max(minSize, 1)) > int64(w.remaining()):
		return 0, w.errf(name, "%d elements of at least %d bytes need more than the %d bytes remaining",
			n, minSize, w.remaining())
	}
	return int(n), nil
}

func (w *walker) present(f *field) bool { return w.version >= f.minV && w.version <= f.maxV }

func (w *walker) walkStruct(t *structType) error {
	for i := range t.fields {
		f := &t.fields[i]
		if !w.present(f) {
			continue
		}
		if err := w.walkField(f); err != nil {
			return err
		}
	}
	if w.flexible {
		return w.walkTags(t)
	}
	return nil
}

func (w *walker) walkField(f *field) error {
	switch f.kind {
	case kBool, kInt8:
		return w.skip(f.name, 1)
	case kInt16:
		return w.skip(f.name, 2)
	case kInt32:
		return w.skip(f.name, 4)
	case kInt64:
		return w.skip(f.name, 8)
	case kUUID:
		return w.skip(f.name, 16)
	case kString, kNullableString:
		nullable := f.kind == kNullableString
		n, err := w.length(f.name, false, nullable)
		if err != nil {
			return err
		}
		if n >= 0 {
			w.pos += n
			w.alloc += allocSize(int64(n))
			if nullable || f.ptr {
				w.alloc += allocSize(stringHeaderSize)
			}
		}
		return nil
	case kBytes, kNullableBytes:
		// kmsg aliases bytes into the frame: nothing is allocated. For
		// non-nullable bytes kmsg reads -1 as empty (a concession to a
		// non-conforming server); Kafka rejects it, and so does the walker.
		n, err := w.length(f.name, true, f.kind == kNullableBytes)
		if err != nil {
			return err
		}
		if n > 0 {
			w.pos += n
		}
		return nil
	case kStructArray:
		n, err := w.count(f.name, w.version >= f.nullSince, minSize(f.elem, w.version, w.flexible))
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		w.alloc += allocSize(int64(n) * f.elem.goSize)
		for range n {
			if err := w.walkStruct(f.elem); err != nil {
				return err
			}
		}
		return nil
	case kInt8Array, kInt32Array:
		size := 4
		if f.kind == kInt8Array {
			size = 1
		}
		n, err := w.count(f.name, w.version >= f.nullSince, size)
		if err != nil {
			return err
		}
		if n > 0 {
			w.pos += size * n
			w.alloc += allocSize(int64(size) * int64(n))
		}
		return nil
	case kStringArray:
		n, err := w.count(f.name, w.version >= f.nullSince, minScalarSize(kString, w.flexible))
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		w.alloc += allocSize(int64(n) * stringHeaderSize)
		for range n {
			l, err := w.length(f.name, false, false)
			if err != nil {
				return err
			}
			w.pos += l
			w.alloc += allocSize(int64(l))
		}
		return nil
	case kStruct:
		return w.walkStruct(f.elem)
	}
	return w.errf(f.name, "schema error: unknown kind %d", f.kind)
}

// walkTags walks a tagged-field section: a uvarint count, then count
// entries of {uvarint tag, uvarint size, size bytes}. Each entry is at
// least two bytes, which bounds the count by the bytes remaining. Known
// tags are walked with their schema and must fill their size exactly;
// unknown tags, which kmsg keeps in a map, are only counted.
func (w *walker) walkTags(t *structType) error {
	n, err := w.uvarint("tagged fields")
	if err != nil {
		return err
	}
	if int64(n)*2 > int64(w.remaining()) {
		return w.errf("tagged fields", "%d tagged fields need more than the %d bytes remaining", n, w.remaining())
	}
	unknown := int64(0)
	for range n {
		tag, err := w.uvarint("tag")
		if err != nil {
			return err
		}
		size, err := w.uvarint("tag size")
		if err != nil {
			return err
		}
		if int64(size) > int64(w.remaining()) {
			return w.errf("tag", "tag %d size %d exceeds the %d bytes remaining", tag, size, w.remaining())
		}
		kt := t.knownTag(tag)
		if kt == nil {
			unknown++
			w.pos += int(size)
			continue
		}
		// Walk the content with the input cut at its end (a copy of the
		// walker would escape to the heap through the recursion).
		full, end := w.src, w.pos+int(size)
		w.src = w.src[:end]
		err = w.walkField(&kt.f)
		w.src = full
		if err != nil {
			return err
		}
		if w.pos != end {
			return w.errf(kt.f.name, "%d trailing bytes in tagged field %d", end-w.pos, tag)
		}
	}
	w.alloc += mapAlloc(unknown)
	return nil
}

func (t *structType) knownTag(tag uint32) *knownTag {
	for i := range t.tags {
		if t.tags[i].tag == tag {
			return &t.tags[i]
		}
	}
	return nil
}

// minSize is the fewest bytes an element of t occupies at version v: every
// present fixed-size field, the length prefixes of strings, bytes and
// arrays (empty), and the tag count when flexible.
func minSize(t *structType, v int16, flexible bool) int {
	n := 0
	for i := range t.fields {
		f := &t.fields[i]
		if v < f.minV || v > f.maxV {
			continue
		}
		if f.kind == kStruct {
			n += minSize(f.elem, v, flexible)
			continue
		}
		n += minScalarSize(f.kind, flexible)
	}
	if flexible {
		n++
	}
	return n
}

func minScalarSize(k kind, flexible bool) int {
	switch k {
	case kBool, kInt8:
		return 1
	case kInt16:
		return 2
	case kInt32:
		return 4
	case kInt64:
		return 8
	case kUUID:
		return 16
	}
	if flexible {
		return 1 // uvarint length or count
	}
	switch k {
	case kString, kNullableString:
		return 2
	default: // bytes and arrays
		return 4
	}
}

// Allocation estimate. The numbers are upper bounds for the Go runtime's
// allocator (size classes waste at most 12.5% plus a few bytes below 32 KiB;
// larger objects are rounded to 8 KiB pages) and for the swiss-table maps
// kmsg uses for unknown tags (measured at 100-160 bytes per entry with Go
// 1.26, 336 bytes for a map of up to eight entries). The tests compare them
// with runtime.MemStats.
const stringHeaderSize = 16

// mapAlloc bounds the bytes allocated for a kmsg.Tags map of n entries.
func mapAlloc(n int64) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 8: // one swiss-table group
		return 384
	default:
		return 512 + 192*n
	}
}

func allocSize(n int64) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 16:
		return 16
	case n <= 32<<10:
		return n + n/8 + 16
	default:
		return (n + 8<<10 - 1) &^ (8<<10 - 1)
	}
}

// walkBody checks body against s at version v. It requires the body to be
// consumed exactly and returns kmsg's estimated allocation.
func walkBody(s *apiSchema, v int16, body []byte) (int64, error) {
	w := walker{src: body, version: v, flexible: s.flexible(v)}
	if err := w.walkStruct(s.body); err != nil {
		return 0, err
	}
	if w.remaining() != 0 {
		return 0, w.errf("body", "%d trailing bytes after the request", w.remaining())
	}
	return w.alloc, nil
}

// schemas holds every request layout the package knows, one per file
// named after its API key.
var schemas = []*apiSchema{
	produceRequest,
	fetchRequest,
	listOffsetsRequest,
	metadataRequest,
	offsetCommitRequest,
	offsetFetchRequest,
	findCoordinatorRequest,
	joinGroupRequest,
	heartbeatRequest,
	leaveGroupRequest,
	syncGroupRequest,
	describeGroupsRequest,
	listGroupsRequest,
	apiVersionsRequest,
	createTopicsRequest,
	deleteTopicsRequest,
	deleteRecordsRequest,
	initProducerIDRequest,
	describeConfigsRequest,
	createPartitionsRequest,
	deleteGroupsRequest,
	incrementalAlterConfigsRequest,
	offsetDeleteRequest,
	describeClusterRequest,
	shareGroupHeartbeatRequest,
	shareGroupDescribeRequest,
	shareFetchRequest,
	shareAcknowledgeRequest,
	describeShareGroupOffsetsRequest,
	alterShareGroupOffsetsRequest,
	deleteShareGroupOffsetsRequest,
	sluiceShareNoteRequest,
}

func schemaFor(key int16) *apiSchema {
	for _, s := range schemas {
		if s.key == key {
			return s
		}
	}
	return nil
}
