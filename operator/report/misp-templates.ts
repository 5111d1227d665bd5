// The MISP object templates a case's event uses, as published in the
// misp-objects repository (objects/NAME/definition.json): what an importing MISP
// matches an object against. Only the relations we fill are listed; the test
// checks them against the published definitions (test/support/misp-templates.json).

export interface TemplateRelation {
  /** The MISP attribute type the template gives the relation. */
  type: string;
  /** The category the attribute is filed under: the template's first, else the type's default. */
  category: string;
  multiple: boolean;
}

export interface ObjectTemplate {
  name: string;
  uuid: string;
  version: number;
  metaCategory: string;
  description: string;
  relations: Record<string, TemplateRelation>;
}

const rel = (type: string, category: string, multiple = false): TemplateRelation => ({ type, category, multiple });

/** A VM: misp-objects has no virtual-machine template; `device` (device-type Other) is the one MISP knows for a machine. */
export const DEVICE: ObjectTemplate = {
  name: 'device',
  uuid: '0c64b41a-e583-4f4d-ac92-d484163b9e52',
  version: 9,
  metaCategory: 'misc',
  description: 'An object to define a device',
  relations: {
    'name': rel('text', 'Other'),
    'alias': rel('text', 'Other', true),
    'device-type': rel('text', 'Other'),
    'description': rel('text', 'Other'),
    'ip-address': rel('ip-src', 'Network activity', true),
    'MAC-address': rel('mac-address', 'Network activity'),
  },
};

/** An address held over an interval: the ledger's answer for one holder. */
export const IP_PORT: ObjectTemplate = {
  name: 'ip-port',
  uuid: '9f8cea74-16fe-4968-a2b4-026676949ac6',
  version: 10,
  metaCategory: 'network',
  description: 'An IP address (or domain or hostname) and a port seen as a tuple (or as a triple) in a specific time frame.',
  relations: {
    'ip-src': rel('ip-src', 'Network activity', true),
    'first-seen': rel('datetime', 'Other'),
    'last-seen': rel('datetime', 'Other'),
    'text': rel('text', 'Other'),
  },
};

/** One log line of the abuse report: its source address and instant. */
export const NETWORK_CONNECTION: ObjectTemplate = {
  name: 'network-connection',
  uuid: 'af16764b-f8e5-4603-9de1-de34d272f80b',
  version: 3,
  metaCategory: 'network',
  description: 'A local or remote network connection.',
  relations: {
    'ip-src': rel('ip-src', 'Network activity'),
    'first-packet-seen': rel('datetime', 'Other'),
  },
};

export const TEMPLATES: readonly ObjectTemplate[] = [DEVICE, IP_PORT, NETWORK_CONNECTION];

/** From MISP's object relationship list (relationships/definition.json). */
export const ATTRIBUTED_TO = 'attributed-to';
