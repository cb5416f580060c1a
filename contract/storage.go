package contract

import (
	"math"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Storage is the claim the storage annotations ask the injector to create
// when it does not exist.
type Storage struct {
	Size  resource.Quantity
	Class string // empty: the cluster's default storage class
}

// ParseStorage validates the storage annotations. It returns nil when
// AnnotationStorage is not set (the claim is declared elsewhere, in Git).
// Every error is an *AnnotationError.
func ParseStorage(annotations map[string]string) (*Storage, error) {
	v, ok := annotations[AnnotationStorage]
	class, hasClass := annotations[AnnotationStorageClass]
	if hasClass {
		if msgs := validation.IsDNS1123Subdomain(class); len(msgs) > 0 {
			return nil, &AnnotationError{Key: AnnotationStorageClass, Value: Mask(class), Problem: "is not a valid storage class name (" + strings.Join(msgs, "; ") + ")",
				Fix: "name a StorageClass of the cluster (DNS-1123 subdomain: lowercase letters, digits, '-' and '.'), or remove the annotation for the default class"}
		}
	}
	if !ok {
		if hasClass {
			return nil, &AnnotationError{Key: AnnotationStorageClass, Value: Mask(class), Problem: "is set without " + AnnotationStorage,
				Fix: "set " + AnnotationStorage + " (a size such as 5Gi) so the injector creates the claim in this class, or remove " + AnnotationStorageClass + " and declare the claim yourself"}
		}
		return nil, nil
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() <= 0 || !wholeBytes(q) {
		return nil, &AnnotationError{Key: AnnotationStorage, Value: Mask(v), Problem: "is not a positive whole number of bytes",
			Fix: "give the size of the workspace claim like 5Gi or 500Mi"}
	}
	if q.Cmp(*maxStorage) >= 0 {
		return nil, &AnnotationError{Key: AnnotationStorage, Value: Mask(v), Problem: "is 8Ei or more, which a claim cannot carry exactly",
			Fix: "give the size of the workspace claim like 5Gi or 500Mi"}
	}
	return &Storage{Size: q, Class: class}, nil
}

// maxStorage is the largest int64: the parser clamps larger binary sizes
// (8Ei and up) to it, so a size there is not the one asked.
var maxStorage = resource.NewQuantity(math.MaxInt64, resource.BinarySI)

// wholeBytes tells whether q is a whole number of bytes, exactly, at any
// size (rounding to scale 0 loses nothing).
func wholeBytes(q resource.Quantity) bool {
	c := q.DeepCopy()
	return c.RoundUp(0)
}
