package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
)

// Reading a bbolt file without bbolt. bbolt maps the file and follows page
// ids as pointers, so a damaged page sends it outside the mapping: a fault
// that kills the process unless the goroutine asked for a panic instead,
// and bbolt's own Check runs on a goroutine of its own. Verify and Salvage
// therefore read the file with ReadAt, checking every page id, element and
// length against the file, so that damage becomes a report. The layout is
// bbolt's on-disk format (go.etcd.io/bbolt/internal/common), in the
// machine's byte order, as bbolt writes it.

// bbolt's on-disk constants.
const (
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elementSize      = 16 // leaf: flags, pos, ksize, vsize (u32); branch: pos, ksize (u32), child (u64)
	bucketHeaderSize = 16 // root page u64 (0: inline), sequence u64
	metaSize         = 64 // magic, version, page size, flags (u32); root, sequence, freelist, pgid, txid, checksum (u64)
	metaMagic        = 0xED0CDAED
	metaVersion      = 2

	branchPage   = 0x01
	leafPage     = 0x02
	metaPage     = 0x04
	freelistPage = 0x10

	bucketElement = 0x01
)

var order = binary.NativeEndian

// rawMeta is what a meta page says.
type rawMeta struct {
	pageSize int
	root     uint64 // root bucket's page
	freelist uint64
	hwm      uint64 // pages in use: 0 .. hwm-1
	txid     uint64
}

// parseMeta reads the meta page at the start of b.
func parseMeta(b []byte) (rawMeta, error) {
	if len(b) < pageHeaderSize+metaSize {
		return rawMeta{}, errors.New("short")
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	h := fnv.New64a()
	h.Write(m[:56])
	switch {
	case order.Uint32(m[0:]) != metaMagic:
		return rawMeta{}, errors.New("no bbolt magic")
	case order.Uint32(m[4:]) != metaVersion:
		return rawMeta{}, fmt.Errorf("bbolt format version %d", order.Uint32(m[4:]))
	case order.Uint64(m[56:]) != h.Sum64():
		return rawMeta{}, errors.New("checksum mismatch")
	}
	meta := rawMeta{pageSize: int(order.Uint32(m[8:])), root: order.Uint64(m[16:]), freelist: order.Uint64(m[32:]),
		hwm: order.Uint64(m[40:]), txid: order.Uint64(m[48:])}
	if meta.pageSize < 1024 || meta.pageSize > 1<<24 || meta.pageSize&(meta.pageSize-1) != 0 {
		return rawMeta{}, fmt.Errorf("page size %d", meta.pageSize)
	}
	return meta, nil
}

// rawDB is a bbolt file read page by page.
type rawDB struct {
	r        io.ReaderAt
	size     int64
	pageSize int
	meta     rawMeta
	metaOK   bool   // a meta page is valid; else meta.root was found by scanning
	limit    uint64 // pages that may be read: the high-water mark, or the file's pages
	notes    []Damage
}

// openRaw reads the meta pages of a bbolt file of size bytes as bbolt
// does: the valid one with the higher transaction id wins. An invalid
// meta page, and a file shorter than the high-water mark, are noted as
// damage. With neither meta page valid it looks for the root by scanning
// the pages (findRoot); err is set only when that fails too.
func openRaw(r io.ReaderAt, size int64) (*rawDB, error) {
	db := &rawDB{r: r, size: size}
	var metas [2]rawMeta
	var errs [2]error
	buf := make([]byte, 4096)
	n, _ := r.ReadAt(buf, 0)
	metas[0], errs[0] = parseMeta(buf[:n])
	db.pageSize = metas[0].pageSize
	if errs[0] != nil {
		// The second meta page is one page in; try each page size bbolt
		// could have used, as bbolt does.
		for i := range 15 {
			pos := int64(1024) << i
			if pos >= size-1024 {
				break
			}
			n, _ := r.ReadAt(buf, pos)
			if m, err := parseMeta(buf[:n]); err == nil && int64(m.pageSize) == pos {
				db.pageSize = m.pageSize
				break
			}
		}
	}
	errs[1] = errors.New("not found at any page size")
	if db.pageSize != 0 {
		n, _ := r.ReadAt(buf, int64(db.pageSize))
		metas[1], errs[1] = parseMeta(buf[:n])
		if errs[1] == nil && metas[1].pageSize != db.pageSize {
			errs[1] = fmt.Errorf("page size %d, the other meta page says %d", metas[1].pageSize, db.pageSize)
		}
	}
	for i, err := range errs {
		if err != nil {
			db.notes = append(db.notes, Damage{Page: uint64(i), Why: fmt.Sprintf("meta page %d is invalid: %v", i, err)})
		}
	}
	switch {
	case errs[0] == nil && (errs[1] != nil || metas[0].txid >= metas[1].txid):
		db.meta, db.metaOK = metas[0], true
	case errs[1] == nil:
		db.meta, db.metaOK = metas[1], true
	}
	if db.metaOK {
		db.limit = db.meta.hwm
		if want := int64(db.meta.hwm) * int64(db.pageSize); size < want {
			db.notes = append(db.notes, Damage{Why: fmt.Sprintf(
				"the file is %d bytes, but its meta page says it holds %d pages of %d bytes (%d bytes): it was truncated",
				size, db.meta.hwm, db.pageSize, want)})
		}
		return db, nil
	}
	return db, db.findRoot()
}

// fileDamage reports whether the notes make the file unsafe for bbolt to
// map: no valid meta page, or a file shorter than its pages.
func (db *rawDB) fileDamage() bool {
	if !db.metaOK {
		return true
	}
	return db.size < int64(db.meta.hwm)*int64(db.pageSize)
}

// freelistDamage checks the freelist page bbolt reads as it opens the
// file, and again in its check.
func (db *rawDB) freelistDamage() *Damage {
	if db.meta.freelist == 0xFFFFFFFFFFFFFFFF { // none stored
		return nil
	}
	p, err := db.page(db.meta.freelist)
	var ids []uint64
	if err == nil {
		ids, err = freelistIDs(p)
	}
	for _, id := range ids {
		if err == nil && id >= db.meta.hwm {
			err = fmt.Errorf("lists page %d, beyond the high-water mark", id)
		}
	}
	if err == nil {
		return nil
	}
	return &Damage{Page: db.meta.freelist, Why: fmt.Sprintf(
		"freelist page %d: %v (no record is lost: salvage rebuilds it)", db.meta.freelist, err)}
}

// page reads page id with its overflow pages, checking that they lie in
// the file and below the high-water mark and that the header names the
// page and a known page type.
func (db *rawDB) page(id uint64) ([]byte, error) {
	if id >= db.limit {
		return nil, fmt.Errorf("page %d is beyond the high-water mark %d", id, db.limit)
	}
	off := int64(id) * int64(db.pageSize)
	if off+int64(db.pageSize) > db.size {
		return nil, fmt.Errorf("page %d is beyond the end of the file (truncated)", id)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := db.r.ReadAt(hdr, off); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	if got := order.Uint64(hdr); got != id {
		return nil, fmt.Errorf("page %d calls itself page %d (overwritten or torn)", id, got)
	}
	switch flags := order.Uint16(hdr[8:]); flags {
	case branchPage, leafPage, metaPage, freelistPage:
	default:
		return nil, fmt.Errorf("page %d has unknown type %#x", id, flags)
	}
	overflow := uint64(order.Uint32(hdr[12:]))
	if id+overflow >= db.limit || off+int64(overflow+1)*int64(db.pageSize) > db.size {
		return nil, fmt.Errorf("page %d runs %d pages past itself, beyond the file", id, overflow)
	}
	buf := make([]byte, int(overflow+1)*db.pageSize)
	if _, err := db.r.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return buf, nil
}

func pageFlags(p []byte) uint16    { return order.Uint16(p[8:]) }
func pageCount(p []byte) int       { return int(order.Uint16(p[10:])) }
func pageOverflow(p []byte) uint64 { return uint64(order.Uint32(p[12:])) }

// element is one entry of a leaf page (key, value, flags) or of a branch
// page (key, child).
type element struct {
	flags      uint32
	key, value []byte
	child      uint64
}

// elements parses the entries of the leaf or branch page p, checking that
// each lies inside p.
func elements(p []byte) ([]element, error) {
	n, leaf := pageCount(p), pageFlags(p) == leafPage
	if pageHeaderSize+n*elementSize > len(p) {
		return nil, fmt.Errorf("%d elements do not fit in the page", n)
	}
	out := make([]element, n)
	for i := range n {
		at := pageHeaderSize + i*elementSize
		e := p[at : at+elementSize]
		var pos, ksize, vsize uint64
		if leaf {
			out[i].flags = order.Uint32(e)
			pos, ksize, vsize = uint64(order.Uint32(e[4:])), uint64(order.Uint32(e[8:])), uint64(order.Uint32(e[12:]))
		} else {
			pos, ksize = uint64(order.Uint32(e)), uint64(order.Uint32(e[4:]))
			out[i].child = order.Uint64(e[8:])
		}
		start := uint64(at) + pos
		if start+ksize+vsize > uint64(len(p)) {
			return nil, fmt.Errorf("element %d points outside the page", i)
		}
		out[i].key = p[start : start+ksize]
		out[i].value = p[start+ksize : start+ksize+vsize]
	}
	return out, nil
}

// freelistIDs parses freelist page p.
func freelistIDs(p []byte) ([]uint64, error) {
	if pageFlags(p) != freelistPage {
		return nil, errors.New("not a freelist page")
	}
	first, count := pageHeaderSize, uint64(pageCount(p))
	if count == 0xFFFF { // the count is the first id's slot
		if len(p) < pageHeaderSize+8 {
			return nil, errors.New("freelist count outside the page")
		}
		count, first = order.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > uint64(len(p)-first)/8 {
		return nil, fmt.Errorf("freelist of %d ids does not fit in its page", count)
	}
	ids := make([]uint64, count)
	for i := range ids {
		ids[i] = order.Uint64(p[first+8*i:])
	}
	return ids, nil
}

// walker visits every record of a bbolt file's buckets, reporting what it
// cannot read.
type walker struct {
	db     *rawDB
	seen   map[uint64]bool
	damage []Damage
	lost   []lostRange
	// record receives each record; bucket is its bucket's path, "/"
	// between nested names.
	record func(bucket string, key, value []byte)
}

// lostRange is the key range of a bucket's page that could not be read:
// the records below it may still be whole on pages nothing reaches now.
// Bucket "" is the root page: what hung below it could be any bucket's.
type lostRange struct {
	bucket    string
	low, high []byte // nil: unbounded
}

// walk visits the whole file from its root bucket.
func (w *walker) walk() {
	w.seen = map[uint64]bool{0: true, 1: true}
	w.tree("", w.db.meta.root, nil, nil, 0)
}

// maxDepth bounds the recursion: bbolt's trees are a few levels deep, so
// deeper means a cycle of damaged pages.
const maxDepth = 64

// bucket visits a bucket whose header (and inline page, if any) is v.
func (w *walker) bucket(name string, v []byte, depth int) {
	if len(v) < bucketHeaderSize {
		w.damage = append(w.damage, Damage{Bucket: name, Why: "bucket header too short; the bucket is lost"})
		return
	}
	if root := order.Uint64(v); root != 0 {
		w.tree(name, root, nil, nil, depth+1)
		return
	}
	// Inline bucket: a leaf page inside the value.
	p := v[bucketHeaderSize:]
	if len(p) < pageHeaderSize || pageFlags(p) != leafPage {
		w.damage = append(w.damage, Damage{Bucket: name, Why: "inline bucket is not a leaf page; the bucket is lost"})
		return
	}
	w.leaf(name, 0, p, nil, nil, depth)
}

// tree visits the page id and what hangs below it; its keys must lie in
// [low, high) when those are set.
func (w *walker) tree(bucket string, id uint64, low, high []byte, depth int) {
	lost := func(why string) {
		w.damage = append(w.damage, Damage{Bucket: bucket, Page: id, Key: low, Why: why + lostRecords(bucket, low)})
		w.lost = append(w.lost, lostRange{bucket, low, high})
	}
	if depth > maxDepth {
		lost("page tree too deep (a cycle of damaged pages)")
		return
	}
	if w.seen[id] {
		lost(fmt.Sprintf("page %d is referenced twice", id))
		return
	}
	p, err := w.db.page(id)
	if err != nil {
		lost(err.Error())
		return
	}
	for i := range pageOverflow(p) + 1 {
		w.seen[id+i] = true
	}
	switch pageFlags(p) {
	case leafPage:
		w.leaf(bucket, id, p, low, high, depth)
	case branchPage:
		elems, err := elements(p)
		if err != nil {
			lost(fmt.Sprintf("branch page %d: %v", id, err))
			return
		}
		w.checkOrder(bucket, id, elems, low, high)
		for i, e := range elems {
			next := high
			if i+1 < len(elems) {
				next = elems[i+1].key
			}
			w.tree(bucket, e.child, e.key, next, depth+1)
		}
	default:
		lost(fmt.Sprintf("page %d is a %#x page where a branch or leaf page belongs", id, pageFlags(p)))
	}
}

// lostRecords says which records a damaged page takes with it.
func lostRecords(bucket string, low []byte) string {
	if low == nil {
		return "; the records on it and below it are lost"
	}
	return fmt.Sprintf("; the records on it and below it, from %s on, are lost", formatKey(bucket, low))
}

// leaf visits the records and buckets of leaf page p (id 0: inline).
func (w *walker) leaf(bucket string, id uint64, p, low, high []byte, depth int) {
	elems, err := elements(p)
	if err != nil {
		w.damage = append(w.damage, Damage{Bucket: bucket, Page: id, Key: low,
			Why: fmt.Sprintf("leaf page %d: %v%s", id, err, lostRecords(bucket, low))})
		return
	}
	w.checkOrder(bucket, id, elems, low, high)
	for _, e := range elems {
		switch {
		case e.flags&bucketElement == 0:
			w.record(bucket, e.key, e.value)
		case bucket == "":
			w.bucket(string(e.key), e.value, depth)
		default:
			w.bucket(bucket+"/"+string(e.key), e.value, depth)
		}
	}
}

// checkOrder reports keys out of order, or outside the range the parent
// page gives: a sign of a damaged page whose records may still be whole
// (each record is checked by its decoder).
func (w *walker) checkOrder(bucket string, id uint64, elems []element, low, high []byte) {
	for i, e := range elems {
		switch {
		case i > 0 && bytes.Compare(elems[i-1].key, e.key) >= 0,
			low != nil && bytes.Compare(e.key, low) < 0,
			high != nil && bytes.Compare(e.key, high) >= 0:
			w.damage = append(w.damage, Damage{Bucket: bucket, Page: id, Key: e.key,
				Why: fmt.Sprintf("key out of order on page %d", id)})
			return
		}
	}
}

// findRoot finds the root bucket's page of a file whose meta pages are
// both invalid. bbolt writes a new root page with every commit and frees
// the old one, so the file also holds older roots that still read well,
// and nothing in bbolt's pages dates them. Every commit of the store's
// committer therefore counts itself in the meta bucket (keyCommit): the
// live root is the one with the highest count. A database written before
// that falls back to the job-id high-water mark, and the choice is noted.
// The freelist taken with it is the one that does not list the root as
// free and lists the most of the other freelist pages.
func (db *rawDB) findRoot() error {
	db.pageSize = db.guessPageSize()
	db.limit = uint64(db.size / int64(db.pageSize))
	var roots, freelists []uint64
	free := map[uint64]map[uint64]bool{}
	for id := uint64(2); id < db.limit; id++ {
		p, err := db.page(id)
		if err != nil {
			continue
		}
		switch pageFlags(p) {
		case freelistPage:
			if ids, err := freelistIDs(p); err == nil {
				freelists = append(freelists, id)
				free[id] = map[uint64]bool{}
				for _, f := range ids {
					free[id][f] = true
				}
			}
		case leafPage:
			if isRootPage(p) {
				roots = append(roots, id)
			}
		}
		id += pageOverflow(p)
	}
	if len(roots) == 0 {
		return errors.New("store: neither meta page is valid, and no root page was found: nothing can be read")
	}
	root, top, ties := roots[0], [2]uint64{}, 0
	for _, r := range roots {
		switch m := db.metaUnder(r); {
		case m[0] > top[0] || (m[0] == top[0] && m[1] > top[1]):
			root, top, ties = r, m, 0
		case m == top:
			ties++
		}
	}
	best, bestCount := uint64(0), -1
	for _, f := range freelists {
		if free[f][root] {
			continue
		}
		n := 0
		for _, g := range freelists {
			if free[f][g] {
				n++
			}
		}
		if n > bestCount {
			best, bestCount = f, n
		}
	}
	why := fmt.Sprintf("neither meta page is valid: the root was found by scanning the file: page %d, of %d candidates", root, len(roots))
	if top[0] == 0 || ties > 0 {
		why += ", by its job-id high-water mark: its records may be older than the last commit"
	}
	db.meta = rawMeta{pageSize: db.pageSize, root: root, freelist: best, hwm: db.limit}
	db.notes = append(db.notes, Damage{Why: why})
	return nil
}

// guessPageSize returns the page size under which the most of the first
// pages name themselves, for a file whose meta pages cannot say.
func (db *rawDB) guessPageSize() int {
	best, bestScore := 4096, -1
	hdr := make([]byte, pageHeaderSize)
	for _, ps := range []int{4096, 8192, 16384, 32768, 65536, 1024, 2048} {
		score := 0
		for id := int64(2); id < 66 && (id+1)*int64(ps) <= db.size; id++ {
			if _, err := db.r.ReadAt(hdr, id*int64(ps)); err == nil && order.Uint64(hdr) == uint64(id) {
				score++
			}
		}
		if score > bestScore {
			best, bestScore = ps, score
		}
	}
	return best
}

// isRootPage reports whether leaf page p looks like gearsched's root
// bucket: bucket entries only, all of them known buckets, jobs and meta
// among them.
func isRootPage(p []byte) bool {
	elems, err := elements(p)
	if err != nil || len(elems) == 0 {
		return false
	}
	names := map[string]bool{}
	for _, e := range elems {
		if e.flags&bucketElement == 0 || !knownBucket(string(e.key)) {
			return false
		}
		names[string(e.key)] = true
	}
	return names[string(bucketJobs)] && names[string(bucketMeta)]
}

// metaUnder returns the commit count and the job-id high-water mark
// stored under root page id, or zeros.
func (db *rawDB) metaUnder(id uint64) (m [2]uint64) {
	w := &walker{db: db, seen: map[uint64]bool{}, record: func(bucket string, k, v []byte) {
		if bucket != string(bucketMeta) || len(v) != 8 {
			return
		}
		switch string(k) {
		case string(keyCommit):
			m[0] = binary.BigEndian.Uint64(v)
		case string(keyNextID):
			m[1] = binary.BigEndian.Uint64(v)
		}
	}}
	p, err := db.page(id)
	if err != nil {
		return m
	}
	elems, _ := elements(p)
	for _, e := range elems {
		if string(e.key) == string(bucketMeta) {
			w.bucket(string(bucketMeta), e.value, 0)
		}
	}
	return m
}

// orphans looks, after a walk that lost pages, for the leaf pages nothing
// reaches any more that are not free either: the leaves below a lost
// branch page. The buckets whose lost key ranges hold a page's keys are
// its candidates (every bucket, when the root page itself was lost);
// claim picks the bucket it is read as, or "" to leave it. Pages go to
// claim twice: first with final false, when claim may put a page off
// ("") until the others are read (ready and pending jobs share a format,
// and the due index tells them apart), then the ones put off with final
// true. Without a readable freelist the older copies of pages cannot be
// told from the orphans, so records deleted since (a finished job, a
// cancelled one) may come back; that is noted.
func (w *walker) orphans(claim func(candidates []string, elems []element, final bool) string) {
	free, freeOK := w.freePages()
	if !freeOK {
		w.damage = append(w.damage, Damage{Why: "the freelist cannot be read: records recovered from pages " +
			"nothing reaches may include deleted ones (a finished job may run again)"})
	}
	type orphan struct {
		id         uint64
		candidates []string
		elems      []element
	}
	var later []orphan
	take := func(o orphan, final bool) bool {
		bucket := claim(o.candidates, o.elems, final)
		switch {
		case bucket == "" && !final:
			return false
		case bucket == "":
			w.damage = append(w.damage, Damage{Page: o.id, Key: o.elems[0].key, Why: fmt.Sprintf(
				"page %d, which the damaged tree no longer reaches, may belong to %s: not recovered",
				o.id, strings.Join(o.candidates, " or "))})
			return true
		}
		w.damage = append(w.damage, Damage{Bucket: bucket, Page: o.id, Key: o.elems[0].key,
			Why: fmt.Sprintf("%d records recovered from page %d, which the damaged tree no longer reaches",
				len(o.elems), o.id)})
		for _, e := range o.elems {
			w.record(bucket, e.key, e.value)
		}
		return true
	}
	for id := uint64(2); id < w.db.limit; id++ {
		if w.seen[id] || free[id] {
			continue
		}
		p, err := w.db.page(id)
		if err != nil {
			continue
		}
		o := orphan{id: id}
		id += pageOverflow(p)
		if pageFlags(p) != leafPage {
			continue
		}
		if o.elems, err = elements(p); err != nil || len(o.elems) == 0 {
			continue
		}
		nested := false
		for _, e := range o.elems {
			nested = nested || e.flags&bucketElement != 0 // buckets' entries are not recovered
		}
		first, last := o.elems[0].key, o.elems[len(o.elems)-1].key
		for _, r := range w.lost {
			if bytes.Compare(first, r.low) < 0 || (r.high != nil && bytes.Compare(last, r.high) >= 0) {
				continue
			}
			names := []string{r.bucket}
			if r.bucket == "" { // the root page: any bucket
				names = nil
				for _, b := range allBuckets {
					names = append(names, string(b))
				}
			}
			for _, n := range names {
				if !slices.Contains(o.candidates, n) {
					o.candidates = append(o.candidates, n)
				}
			}
		}
		if nested || len(o.candidates) == 0 {
			continue
		}
		if !take(o, false) {
			later = append(later, o)
		}
	}
	for _, o := range later {
		take(o, true)
	}
}

// freePages reads the freelist the meta page (or findRoot) names.
func (w *walker) freePages() (map[uint64]bool, bool) {
	if w.db.meta.freelist == 0 || w.db.meta.freelist == 0xFFFFFFFFFFFFFFFF {
		return nil, false
	}
	p, err := w.db.page(w.db.meta.freelist)
	if err != nil {
		return nil, false
	}
	ids, err := freelistIDs(p)
	if err != nil {
		return nil, false
	}
	free := make(map[uint64]bool, len(ids)+1)
	for _, id := range ids {
		free[id] = true
	}
	for i := range pageOverflow(p) + 1 {
		free[w.db.meta.freelist+i] = true // the freelist's own pages hold no records
	}
	return free, true
}
