// Attribute policy of PKCS#11 v2.40 (section 4 tables): which attributes an object class
// has, their value kinds, who may set them when, and which are secret.
#pragma once
#include "object.h"

namespace hsm {

enum class AttrKind { Bool, Ulong, Bytes, Date, MechList };
// Where an attribute may come from the caller.
enum AttrRule : unsigned {
  kOnCreate = 1,     // C_CreateObject template
  kOnGenerate = 2,   // C_GenerateKey(Pair), C_UnwrapKey, C_DeriveKey templates
  kModifiable = 4,   // C_SetAttributeValue and C_CopyObject (subject to one-way rules)
  kCopyChange = 8,   // C_CopyObject only (CKA_TOKEN, CKA_PRIVATE, ...)
  kSecret = 16,      // never revealed for sensitive or unextractable keys
};
struct AttrInfo {
  AttrKind kind;
  unsigned rules;
};

enum class Origin { Create, Generate, Unwrap, Derive, Copy, Set };

// nullptr when the attribute does not belong to objects of this class and key type.
const AttrInfo* attributeInfo(CK_ULONG type, CK_ULONG objectClass, CK_ULONG keyType);

// Checks a caller's template for an object of the given class: every attribute known,
// applicable, well-formed and allowed for this origin. isSecurityOfficer gates CKA_TRUSTED.
CK_RV checkTemplate(const Template& tmpl, CK_ULONG objectClass, CK_ULONG keyType, Origin origin,
                    bool isSecurityOfficer);
// Checks one change to an existing object (C_SetAttributeValue / C_CopyObject):
// read-only attributes and the one-way transitions (SENSITIVE only to true, ...).
CK_RV checkChange(const Object& object, const TemplateAttribute& change, Origin origin, bool isSecurityOfficer);
// Copies template values into the object, then fills the class defaults for absent ones.
void applyTemplate(Object& object, const Template& tmpl);
void applyDefaults(Object& object);
// Sets CKA_LOCAL, CKA_KEY_GEN_MECHANISM, CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE.
void setProvenance(Object& object, bool local, CK_ULONG generationMechanism);
// Whether the value of `type` may be read from this object.
bool isReadable(const Object& object, CK_ULONG type);

// Finds an attribute in a template; nullptr when absent.
const TemplateAttribute* findAttribute(const Template& tmpl, CK_ULONG type);
bool templateUlong(const Template& tmpl, CK_ULONG type, CK_ULONG* out);
bool templateBool(const Template& tmpl, CK_ULONG type, bool fallback);

}  // namespace hsm
