-- One ticket's transition, and transfers (part of a script, see lib.lua).

local TRANSITIONS = cjson.decode(__TRANSITIONS__)

local function can(action, status)
  local allowed = TRANSITIONS[action]
  for _, s in ipairs(allowed) do if s == status then return true end end
  return false
end

-- recall, serve, skip, no_show, done, cancel, requeue: one ticket, one transition.
local function simple(action, etype, apply)
  local t, err = load_ticket(A.ticket)
  if not t then return err end
  if not can(action, t.status) then
    return fail('illegal_transition', 'cannot ' .. action .. ' a ticket that is ' .. t.status, 'status')
  end
  local q = queue_hash(t.queue)
  local fields = {prev_status = t.status}
  apply(t, fields, q)
  set_ticket(t, fields)
  local _, ev = emit(t.clinic, etype, t.queue, {ticket_json(t)}, {queue_json(q)})
  return result(ev, t)
end

function ops.recall()
  return simple('recall', 'recalled', function(t, f)
    f.recalls = tostring(num(t.recalls) + 1)
    t.recalls = f.recalls
    push_recent(t.clinic, t)
  end)
end

function ops.serve()
  return simple('serve', 'serving', function(t, f) f.status = 'serving'; f.served_at = NOW_S end)
end

function ops.skip()
  return simple('skip', 'skipped', function(t, f) leave_counter(t); f.status = 'skipped' end)
end

function ops.no_show()
  return simple('no_show', 'no_show', function(t, f) leave_counter(t); f.status = 'no_show' end)
end

function ops.done()
  return simple('done', 'done', function(t, f, q)
    leave_counter(t); learn_service_time(t, q); f.status = 'done'; f.done_at = NOW_S
  end)
end

function ops.cancel()
  return simple('cancel', 'cancelled', function(t, f)
    if t.status == 'waiting' then redis.call('ZREM', K.waiting(t.queue), t.id) end
    leave_counter(t); f.status = 'cancelled'; f.done_at = NOW_S
  end)
end

function ops.requeue()
  return simple('requeue', 'requeued', function(t, f)
    leave_counter(t)
    redis.call('ZADD', K.waiting(t.queue), t.score, t.id)
    f.status = 'waiting'; f.counter = ''; f.called_at = '0'; f.served_at = '0'
  end)
end

function ops.transfer()
  local t, err = load_ticket(A.ticket)
  if not t then return err end
  local to = queue_hash(A.to_queue)
  if not to then return fail('not_found', 'unknown queue ' .. A.to_queue, 'queue') end
  if to.clinic ~= t.clinic then return fail('invalid_field', 'queue ' .. A.to_queue .. ' is in another clinic', 'queue') end
  if to.id == t.queue then return fail('illegal_transition', 'ticket is already in queue ' .. to.id, 'queue') end
  if not can('transfer', t.status) then
    return fail('illegal_transition', 'cannot transfer a ticket that is ' .. t.status, 'status')
  end
  local from = t.queue
  if t.status == 'waiting' then redis.call('ZREM', K.waiting(from), t.id) end
  leave_counter(t)
  set_ticket(t, {prev_status = t.status, status = 'waiting', queue = to.id, counter = '', called_at = '0', served_at = '0'})
  redis.call('ZADD', K.waiting(to.id), t.score, t.id)
  local _, ev = emit(t.clinic, 'transferred', to.id, {ticket_json(t)}, {queue_json(queue_hash(from)), queue_json(to)},
                     ',"from_queue":' .. jtext(from))
  return result(ev, t)
end


-- A waiting ticket goes back A.places places, once (a patient's "LATE" reply): its score moves
-- between the tickets that many and one more places behind it, or past the last one when fewer
-- wait behind. The ticket hash keeps ``moved_back`` so a second request is a conflict.
function ops.move_back()
  local t, err = load_ticket(A.ticket)
  if not t then return err end
  if t.status ~= 'waiting' then
    return fail('illegal_transition', 'cannot move back a ticket that is ' .. t.status, 'status')
  end
  if redis.call('HGET', K.ticket(t.id), 'moved_back') == '1' then
    return fail('illegal_transition', 'this ticket was already moved back once', 'moved_back')
  end
  local places = tonumber(A.places) or 0
  if places < 1 then return fail('invalid_field', 'must be at least 1', 'places') end
  local wkey = K.waiting(t.queue)
  local rank = redis.call('ZRANK', wkey, t.id)
  local behind = redis.call('ZRANGE', wkey, rank + places, rank + places + 1, 'WITHSCORES')
  if #behind == 0 then
    behind = redis.call('ZRANGE', wkey, -1, -1, 'WITHSCORES')
    if behind[1] == t.id then return fail('illegal_transition', 'nobody waits behind this ticket', 'status') end
  end
  local a = tonumber(behind[2])
  local score = a + 1  -- past the last one
  if #behind == 4 then score = math.floor((a + tonumber(behind[4])) / 2) end
  if score <= a then score = a + 1 end  -- two neighbours 1 µs apart: share the later one's score
  local text = string.format('%d', score)
  redis.call('ZADD', wkey, text, t.id)
  set_ticket(t, {prev_status = t.status, score = text, moved_back = '1'})
  local _, ev = emit(t.clinic, 'moved_back', t.queue, {ticket_json(t)}, {queue_json(queue_hash(t.queue))})
  return result(ev, t)
end

-- The ticket's holder asks for notices (they allowed Web Push on the ticket page): ``notify``
-- turns on, with an event so the mirrors and the record learn it. Already on: no change.
function ops.notify_on()
  local t, err = load_ticket(A.ticket)
  if not t then return err end
  if t.status ~= 'waiting' and t.status ~= 'called' and t.status ~= 'serving' and t.status ~= 'skipped' then
    return fail('illegal_transition', 'cannot ask for notices on a ticket that is ' .. t.status, 'status')
  end
  if t.notify == '1' then return '{"ok":true,"id":' .. t.id .. ',"changed":false}' end
  set_ticket(t, {notify = '1'})
  local _, ev = emit(t.clinic, 'notify_on', t.queue, {ticket_json(t)}, {queue_json(queue_hash(t.queue))})
  return result(ev, t)
end
