// The simulator's error codes: those of the linearizability checker, which the simulator, the
// process tests and the chaos harness call. One meaning each; callers branch on `err.code`.

import { CodedError } from '../errors.ts';

export const LinearizabilityErrorCode = {
  /** An operation with a non-finite call time, ret < call, or an output although it never returned. */
  BadOperation: 'CAIRN_LIN_BAD_OPERATION',
  /** A stepBudget or memoEntriesMax that is not a non-negative integer. */
  BadOption: 'CAIRN_LIN_BAD_OPTION',
} as const;
export type LinearizabilityErrorCode = (typeof LinearizabilityErrorCode)[keyof typeof LinearizabilityErrorCode];

export class LinearizabilityError extends CodedError<LinearizabilityErrorCode> {}
