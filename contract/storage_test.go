package contract

import (
	"errors"
	"testing"
)

func TestParseStorage(t *testing.T) {
	for _, c := range []struct {
		annotations map[string]string
		size, class string // empty size: nil result
		errKey      string
	}{
		{map[string]string{}, "", "", ""},
		{map[string]string{AnnotationStorage: "5Gi"}, "5Gi", "", ""},
		{map[string]string{AnnotationStorage: "500Mi", AnnotationStorageClass: "ceph-block"}, "500Mi", "ceph-block", ""},
		{map[string]string{AnnotationStorage: "0.5Gi"}, "512Mi", "", ""},
		{map[string]string{AnnotationStorage: "lots"}, "", "", AnnotationStorage},
		{map[string]string{AnnotationStorage: ""}, "", "", AnnotationStorage},
		{map[string]string{AnnotationStorage: "0"}, "", "", AnnotationStorage},
		{map[string]string{AnnotationStorage: "-1Gi"}, "", "", AnnotationStorage},
		{map[string]string{AnnotationStorage: "100m"}, "", "", AnnotationStorage}, // a tenth of a byte
		{map[string]string{AnnotationStorage: "5Gi", AnnotationStorageClass: "Ceph_Block"}, "", "", AnnotationStorageClass},
		{map[string]string{AnnotationStorage: "5Gi", AnnotationStorageClass: ""}, "", "", AnnotationStorageClass},
		{map[string]string{AnnotationStorageClass: "ceph-block"}, "", "", AnnotationStorageClass},
	} {
		s, err := ParseStorage(c.annotations)
		var ae *AnnotationError
		switch {
		case c.errKey != "":
			if !errors.As(err, &ae) || ae.Key != c.errKey || ae.Fix == "" {
				t.Errorf("%v: error %v, want an AnnotationError on %s", c.annotations, err, c.errKey)
			}
		case err != nil:
			t.Errorf("%v: %v", c.annotations, err)
		case c.size == "":
			if s != nil {
				t.Errorf("%v: %+v, want nil", c.annotations, s)
			}
		case s == nil || s.Size.String() != c.size || s.Class != c.class:
			t.Errorf("%v: %+v, want %s %q", c.annotations, s, c.size, c.class)
		}
	}
}
