// Grafana's schema types string enums (ThresholdsMode, FieldColorModeId, ...) as TypeScript
// enums, which a dashboard's plain JSON strings can never be. Loose<T> accepts their values
// ("absolute") while keeping every other constraint: property names (excess properties are
// errors), optionality, unions, numeric enums and nesting.
type Lit<T> = T extends string ? (string extends T ? T : `${T}`) : T;

export type Loose<T> = T extends (infer U)[]
  ? Loose<U>[]
  : T extends object
    ? { [K in keyof T]: Loose<T[K]> }
    : Lit<T>;
