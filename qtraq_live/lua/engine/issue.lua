-- A new ticket (part of a script, see lib.lua).

function ops.issue()
  local q = queue_hash(A.queue)
  if not q then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  local id = A.id
  if id then
    if redis.call('EXISTS', K.ticket(id)) == 1 then return fail('conflict', 'ticket ' .. id .. ' exists', 'id') end
  else
    id = tostring(redis.call('INCR', KEY_TICKET_SEQ))
  end
  local n = redis.call('INCR', K.labels(A.queue, A.day))
  redis.call('EXPIRE', K.labels(A.queue, A.day), LABEL_TTL_S)
  local label = q.prefix .. '-' .. string.format('%03d', n)
  -- arrival stamp in µs-like units, strictly increasing per clinic so order is total
  local arrival
  if A.arrival_ms then
    arrival = A.arrival_ms * 1000 + (tonumber(id) % 1000)
  else
    arrival = NOW * 1000
    local last = num(redis.call('GET', K.arrival(q.clinic)))
    if arrival <= last then arrival = last + 1 end
    redis.call('SET', K.arrival(q.clinic), string.format('%.0f', arrival))
  end
  local score = arrival
  if A.priority == 0 then score = score + NORMAL_OFFSET end
  local t = {
    id = id, clinic = q.clinic, queue = A.queue, label = label, status = 'waiting',
    score = string.format('%.0f', score), created_at = NOW_S, day = A.day, token = A.token,
    __ISSUE_FIELDS__  -- generated (live_schema.lua_issue_fields): from the arguments, or empty
  }
  redis.call('ZADD', K.waiting(A.queue), t.score, id)
  t.issue_ahead = tostring(redis.call('ZRANK', K.waiting(A.queue), id))  -- for ETA quality (predicted vs real)
  set_ticket({id = id}, t)
  redis.call('SET', K.token(A.token), id)
  local _, ev = emit(q.clinic, 'issued', A.queue, {ticket_json(t)}, {queue_json(q)})
  return result(ev, t)
end

