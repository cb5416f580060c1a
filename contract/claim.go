package contract

// ClaimName is the claim a workspace lives on: the claim annotation, else
// the Deployment's name. The injection mounts it, the provisioner creates
// it and the claim warnings read it by this one rule.
func ClaimName(annotations map[string]string, deployment string) string {
	if c, ok := annotations[AnnotationClaim]; ok {
		return c
	}
	return deployment
}
