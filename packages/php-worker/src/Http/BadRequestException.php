<?php

declare(strict_types=1);

namespace Warmpool\Http;

/** The server sent a request context that cannot be decoded; the canonical loop answers 400. */
final class BadRequestException extends \UnexpectedValueException
{
}
