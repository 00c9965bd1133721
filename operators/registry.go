// Package operators assembles Cairn's operators from a definitions
// directory. The operators themselves live in subpackages: journey, segment,
// funnel and count.
package operators

import (
	"errors"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/count"
	"github.com/cairn-cjo/cairn/operators/defs"
	"github.com/cairn-cjo/cairn/operators/funnel"
	"github.com/cairn-cjo/cairn/operators/journey"
	"github.com/cairn-cjo/cairn/operators/segment"
)

// Options configures Load.
type Options struct {
	// AggregatesTopic receives journey, segment and funnel aggregates.
	AggregatesTopic string
}

// Set is the operators loaded from one definitions directory.
type Set struct {
	Operators []engine.Operator
	Docs      []defs.Doc
	Journeys  *journey.Operator // nil without journey definitions
	Segments  *segment.Operator // nil without segment definitions
	Funnels   *funnel.Operator  // nil without funnel definitions
}

// knownKinds are the definition kinds some operator decodes.
var knownKinds = map[string]bool{"counter": true, "journey": true, "policy": true, "segment": true, "funnel": true}

// Load reads every definition in dir and builds the operators. It returns
// every problem found, each naming its file and line.
func Load(dir string, o Options) (*Set, error) {
	docs, err := defs.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	return Build(docs, o)
}

// Build builds the operators of already parsed documents.
func Build(docs []defs.Doc, o Options) (*Set, error) {
	var errs []error
	for i := range docs {
		d := &docs[i]
		if !knownKinds[d.Kind] {
			errs = append(errs, d.Errorf(defs.Field(d.Node, "kind"), "kind", "unknown kind %q", d.Kind))
		}
	}
	s := &Set{Docs: docs}
	counters, err := count.Load(docs)
	errs = append(errs, err)
	for _, c := range counters {
		s.Operators = append(s.Operators, c)
	}
	// Segments run before journeys, so that a journey reading membership
	// on the same event sees it updated.
	segmentIDs := []string{} // journeys check their segment references against it
	if has(docs, "segment") {
		sg, err := segment.New(docs, segment.Options{AggregatesTopic: o.AggregatesTopic})
		errs = append(errs, err)
		if err == nil {
			s.Segments = sg
			s.Operators = append(s.Operators, sg)
			segmentIDs = sg.IDs()
		} else {
			segmentIDs = nil // do not pile reference errors on top
		}
	}
	if has(docs, "journey") {
		j, err := journey.New(docs, journey.Options{AggregatesTopic: o.AggregatesTopic, Segments: segmentIDs})
		errs = append(errs, err)
		if err == nil {
			s.Journeys = j
			s.Operators = append(s.Operators, j)
		}
	}
	if has(docs, "funnel") {
		f, err := funnel.New(docs, funnel.Options{AggregatesTopic: o.AggregatesTopic})
		errs = append(errs, err)
		if err == nil {
			s.Funnels = f
			s.Operators = append(s.Operators, f)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func has(docs []defs.Doc, kind string) bool {
	for _, d := range docs {
		if d.Kind == kind {
			return true
		}
	}
	return false
}
